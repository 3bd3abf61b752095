"""Kill tests: SIGKILL a real `fit` at random moments (and inside a checkpoint write), then resume.

Every trial must end as a straight run ends (the same final weights, bit for bit on CPU), or, killed
before its first checkpoint, start cleanly; no `.ckpt` it leaves may be torn or unreadable.

16 trials (4 per task). Slow (about 3 minutes on 2 CPU cores): `pytest -m slow tests/test_kill.py`.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
CADENCE = ["--trainer.max_epochs=2", "--trainer.limit_train_batches=6", "--trainer.val_check_interval=2",
           "--trainer.limit_val_batches=1", "--test_after_fit=false", "--trainer.enable_progress_bar=false",
           "--trainer.enable_model_summary=false", "--trainer.default_root_dir=runs"]  # fmt: skip
TASKS = {
    "resnet": ["--data.source=embedded", "--data.batch_size=16", "--model.net.arch=resnet8"],
    "lstm": ["--data.source=embedded", "--data.batch_size=8", "--model.net.dim=16", "--model.net.layers=2"],
    "gan": ["--data.source=embedded", "--data.batch_size=8", "--model.net.dim=8", "--model.net.z_dim=16",
            "--evaluation.samples=8", "--evaluation.test_samples=8", "--trainer.check_val_every_n_epoch=1"],
    "transformer": ["--data.num_train=256", "--data.num_val=32", "--data.num_test=32", "--data.batch_size=32",
                    "--model.net.layers=1", "--model.net.dim=32", "--trainer.max_steps=-1",
                    "--trainer.check_val_every_n_epoch=1"],
}  # fmt: skip
# Run inside the killed process: the Nth checkpoint write stops halfway with SIGKILL.
KILL_IN_WRITE = """
import os, signal, sys, torch
n = int(os.environ["KILL_AT_SAVE"]); calls = [0]; save = torch.save
def torn_save(obj, f, *args, **kwargs):
    calls[0] += 1
    if calls[0] == n and not hasattr(f, "write"):
        with open(f, "wb") as out:
            out.write(b"PK half a checkpoint")
            out.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return save(obj, f, *args, **kwargs)
torch.save = torn_save
sys.argv = ["tasks"] + sys.argv[1:]
import runpy; runpy.run_module("tasks.{task}", run_name="__main__")
"""


def fit_command(task: str, judge: str, *extra: str) -> list[str]:
    args = ["fit", *CADENCE, *TASKS[task], *extra]
    if task == "gan":
        args.append(f"--evaluation.classifier_path={judge}")
    return [sys.executable, "-m", f"tasks.{task}", *args]


def final_weights(folder: Path) -> dict[str, torch.Tensor]:
    newest = max(folder.glob("runs/*/version_*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    return torch.load(newest, map_location="cpu", weights_only=False)["state_dict"]


def every_checkpoint_loads(folder: Path) -> None:
    for path in folder.rglob("*.ckpt"):
        torch.load(path, map_location="cpu", weights_only=False)  # raises on a torn file


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("task", list(TASKS))
def test_sigkill_at_random_moments_then_resume(task, tmp_path, judge_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    reference = tmp_path / "straight"
    reference.mkdir()
    start = time.monotonic()
    done = run(fit_command(task, judge_path), reference)
    assert done.returncode == 0, done.stderr[-3000:]
    duration = time.monotonic() - start
    expected = final_weights(reference)
    rng = random.Random(task)
    outcomes = []
    for trial in range(4):  # 3 kills at random moments, 1 inside the 3rd checkpoint write
        folder = tmp_path / f"trial{trial}"
        folder.mkdir()
        if trial < 3:
            proc = subprocess.Popen(fit_command(task, judge_path), cwd=folder, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            time.sleep(rng.uniform(0.4, 0.98) * duration)  # the first ~4 s are imports
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        else:
            code = KILL_IN_WRITE.replace("{task}", task)
            killed = subprocess.run([sys.executable, "-c", code, *fit_command(task, judge_path)[3:]], cwd=folder,
                                    env={**env, "KILL_AT_SAVE": "3"}, capture_output=True, text=True)  # fmt: skip
            assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
        resumed = run(fit_command(task, judge_path, "--ckpt_path=last"), folder)
        if resumed.returncode != 0:
            assert "no last.ckpt under" in resumed.stderr, resumed.stderr[-3000:]  # killed before any checkpoint
            outcomes.append("killed before the first checkpoint: started afresh")
            assert run(fit_command(task, judge_path), folder).returncode == 0
        else:
            outcomes.append("resumed")
        every_checkpoint_loads(folder)
        got = final_weights(folder)
        assert got.keys() == expected.keys()
        for key in expected:
            assert torch.equal(got[key], expected[key]), f"trial {trial}: {key} differs from the straight run"
    print(f"{task}: {outcomes}")
