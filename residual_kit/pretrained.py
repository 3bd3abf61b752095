"""Trained weights that ship with the package: `create_model("resnet20", pretrained="digits")`, offline.

Each entry names a file under `residual_kit/weights/` (a slim task checkpoint: the network's config and weights),
its SHA-256, checked on every load, what the network expects of its input, and the command that trained it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from .registry import Registry

WEIGHTS = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class Pretrained:
    """A shipped weight file of a registered model.

    Args:
        file: its name under `residual_kit/weights/`.
        sha256: its SHA-256, checked on load.
        preprocessing: what an input must be: channels, size, the per-channel mean and std to normalise by, and
            the class names of the outputs.
        trained_by: the command that trained it, and on what data.
    """

    file: str
    sha256: str
    preprocessing: dict[str, Any] = field(default_factory=dict)
    trained_by: str = ""


PRETRAINED: Registry[Pretrained] = Registry(
    "pretrained weights",
    {
        "resnet20.digits": Pretrained(
            "resnet20_digits.pt",
            "02cdeb544ab0ef01e41a00ced89add41a420f113b88d0605ed92e59c858ad368",
            {"channels": 1, "size": 28, "mean": [0.1307], "std": [0.3081], "classes": [str(i) for i in range(10)]},
            "python -m tasks.resnet fit (seed 42): the best checkpoint, trained on 4,000 of the 5,000 embedded MNIST "
            "digits, chosen on 500 others; residual_kit.pretrained.slim wrote it",
        ),
    },
    home="residual_kit.pretrained.PRETRAINED",
)
"""Shipped weights by "<model>.<tag>"."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pretrained_path(name: str, tag: str) -> Path:
    """The shipped weight file `tag` of the model `name`, its SHA-256 checked; a one-line error for weights that do
    not ship or a file that is missing or damaged."""
    key = f"{name}.{tag}"
    if key not in PRETRAINED:
        shipped = ", ".join(f'"{k.split(".", 1)[1]}" for {k.split(".", 1)[0]}' for k in PRETRAINED)
        raise ValueError(f"no shipped weights {tag!r} for {name!r}: what ships is {shipped}")
    entry = PRETRAINED[key]
    path = WEIGHTS / entry.file
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from this installation: reinstall residual-kit")
    digest = sha256(path)
    if digest != entry.sha256:
        raise ValueError(
            f"{path} has SHA-256 {digest}, not the {entry.sha256} it shipped with: the file is damaged or was "
            "replaced; reinstall residual-kit"
        )
    return path


def load_pretrained(name: str, tag: str, **overrides: Any) -> nn.Module:
    """The registered model `name` with the shipped weights `tag`, in eval mode, its `preprocessing` attached; a
    file whose SHA-256 is not the one it shipped with is refused in one line."""
    from .models.checkpoint import load_network

    net = load_network(name, pretrained_path(name, tag), **overrides)
    net.preprocessing = dict(PRETRAINED[f"{name}.{tag}"].preprocessing)
    return net


def slim(checkpoint: str | Path, out: str | Path) -> str:
    """Write a task checkpoint's network alone (its `residual_kit` entry and `net.*` weights) to `out`, the form
    a shipped weight file has; its SHA-256."""
    import torch

    from .models.checkpoint import ENTRY, read_entry

    entry, weights = read_entry(checkpoint)
    net = {k: v for k, v in weights.items() if k.startswith("net.")}
    torch.save({ENTRY: entry, "state_dict": net}, out)
    return sha256(Path(out))


__all__ = ["PRETRAINED", "WEIGHTS", "Pretrained", "load_pretrained", "pretrained_path", "slim"]
