"""The package as a user installs it: a wheel built from the checkout, installed in a new virtual environment
outside the checkout; with the `tasks` extra it runs the quick start and finds its shipped configs by name, without
it the library is torch alone.

Slow (it installs torch into the new environment): `pytest -m slow tests/test_wheel.py`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def wheel_in_new_venv(tmp_path: Path, extras: str = "") -> tuple[Path, Path]:
    """(the new venv's python, an empty working folder outside the checkout) with the wheel installed."""
    wheels, venv, work = tmp_path / "wheels", tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)], check=True)
    (wheel,) = wheels.glob("residual_kit-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"{wheel}{extras}"], check=True)
    return python, work


@pytest.mark.slow
def test_the_library_alone_installs_torch_and_nothing_of_the_tasks(tmp_path):
    python, work = wheel_in_new_venv(tmp_path)
    listed = subprocess.run([str(python), "-m", "pip", "list"], capture_output=True, text=True, check=True).stdout
    for package in ("pytorch-lightning", "lightning", "matplotlib", "mlxtend", "scikit-learn", "scipy", "torchmetrics"):
        assert f"\n{package} " not in listed.lower(), package
    code = (
        "import torch\n"
        "from residual_kit import Residual\n"
        "from residual_kit.models import create_model, list_models\n"
        "nets = [create_model(name) for name in list_models()]\n"
        "y = Residual(torch.nn.Linear(8, 8), placement='pre', dim=8)(torch.randn(2, 8))\n"
        "print(len(nets), tuple(y.shape))"
    )
    done = subprocess.run([str(python), "-c", code], cwd=work, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-2:] == ["(2,", "8)"] and int(done.stdout.split()[0]) > 10
    task = subprocess.run([str(python), "-m", "tasks.resnet", "fit"], cwd=work, capture_output=True, text=True)
    assert task.returncode == 1 and task.stderr.strip().splitlines() == [task.stderr.strip()]
    assert "pip install 'residual-kit[tasks]'" in task.stderr


@pytest.mark.slow
def test_a_wheel_installed_outside_the_checkout_runs_the_quick_start(tmp_path):
    python, work = wheel_in_new_venv(tmp_path, "[tasks]")
    venv = python.parents[1]
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
