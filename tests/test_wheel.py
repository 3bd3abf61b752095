"""The package as a user installs it: a wheel built from the checkout, installed with its dependencies in a new
virtual environment outside the checkout, runs the quick start and finds its shipped configs by name.

Slow (it installs torch into the new environment): `pytest -m slow tests/test_wheel.py`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_wheel_installed_outside_the_checkout_runs_the_quick_start(tmp_path):
    wheels, venv, work = tmp_path / "wheels", tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)], check=True)
    (wheel,) = wheels.glob("residual_kit-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True)
    where = subprocess.run([str(python), "-c", "import tasks, residual_kit; print(tasks.__file__)"], cwd=work,
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert str(venv) in where and str(ROOT) not in where
    quick = [str(python), "-m", "tasks.resnet", "fit", "--trainer.max_epochs=1", "--trainer.enable_progress_bar=false"]
    done = subprocess.run(quick, cwd=work, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(work.glob("runs/resnet/version_0/checkpoints/last.ckpt"))
    shipped = [str(python), "-m", "tasks.resnet", "fit", "--config", "mnist_resnet20", "--print_config"]
    printed = subprocess.run(shipped, cwd=work, capture_output=True, text=True)
    assert printed.returncode == 0 and "schedule: steps" in printed.stdout, printed.stderr[-2000:]
