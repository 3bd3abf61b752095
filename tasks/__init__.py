"""Lightning tasks built from residual_kit: `python -m tasks.<name> fit|validate|test|predict`.

They need the `tasks` extra (Lightning, torchvision, torchmetrics, ...); `residual_kit` itself needs torch alone.
"""

from importlib.util import find_spec

_NEEDED = ("pytorch_lightning", "jsonargparse", "torchvision", "torchmetrics", "matplotlib", "scipy", "mlxtend")
_missing = [name for name in _NEEDED if find_spec(name) is None]
if _missing:
    raise SystemExit(
        f"error: the tasks need residual-kit's 'tasks' extra ({', '.join(_missing)} not installed): "
        "pip install 'residual-kit[tasks]' (from a checkout: pip install -e '.[tasks]')"
    )
