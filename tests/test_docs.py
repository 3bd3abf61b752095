"""The README's code and its quick start stay true: its Python blocks run, its commands match CI."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_python_blocks_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})
    assert "True" in capsys.readouterr().out  # the ReZero attention block is the identity at init


def test_quick_start_is_two_commands_and_ci_runs_the_test_one():
    quick = re.search(r"## Quick start\n\n```bash\n(.*?)```", README, flags=re.S).group(1).strip().splitlines()
    assert len(quick) == 2
    test_command = quick[1].split("#")[0].strip()
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_example_runs(capsys):
    runpy.run_path(str(ROOT / "examples" / "wrap_any_module.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "Residual(y = relu(pad(x) + f(x))" in out and out.rstrip().endswith("True")


def test_register_variant_example_runs_and_cleans_up(capsys):
    from residual_kit import MERGES

    try:
        runpy.run_path(str(ROOT / "examples" / "register_variant.py"), run_name="__main__")
    finally:
        MERGES.pop("convex", None)  # the example registers it for its own process
    out = capsys.readouterr().out
    assert "y = (1-λ)·x + λ·f(norm(x))" in out and out.rstrip().endswith("True")
