"""Every task under the Lightning Trainer's DDP on CPU (gloo), as a user types it.

Two processes split the data (half the steps per epoch) and their metrics are reduced across processes:
the test metrics of the 2-process run equal those of one process on the same checkpoint.
"""

from __future__ import annotations

import csv
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DDP = ["--trainer.accelerator=cpu", "--trainer.strategy=ddp", "--trainer.devices=2"]
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
TASKS = {  # args, the test metric compared with one process, optimiser steps of each of the 2 processes
    "resnet": (["--data.source=embedded", "--data.batch_size=200", "--model.net.arch=resnet8"], "test/acc", 10),
    "lstm": (
        [
            "--data.source=embedded",
            "--data.batch_size=100",
            "--model.net.dim=16",
            "--model.net.layers=2",
            "--data.num_train=400",
            "--data.num_val=100",
            "--data.num_test=100",
        ],
        "test/exact",
        2,
    ),
    "transformer": (
        [
            "--data.num_train=512",
            "--data.num_val=64",
            "--data.num_test=64",
            "--data.batch_size=64",
            "--model.net.layers=1",
            "--model.net.dim=32",
            "--trainer.max_steps=-1",
            "--trainer.val_check_interval=null",
            "--trainer.check_val_every_n_epoch=1",
        ],
        "test/token_acc",
        4,
    ),
    "gan": (
        [
            "--data.source=embedded",
            "--data.batch_size=400",
            "--model.net.dim=8",
            "--model.net.z_dim=16",
            "--evaluation.samples=50",
            "--evaluation.test_samples=50",
            "--trainer.check_val_every_n_epoch=1",
        ],
        None,
        5,
    ),
}


def read_metrics(path: Path) -> dict[str, float]:
    """The last value of every column of a CSVLogger metrics.csv."""
    out: dict[str, float] = {}
    for row in csv.DictReader(path.open()):
        out.update({k: float(v) for k, v in row.items() if v not in ("", None)})
    return out


@pytest.mark.parametrize("task", list(TASKS))
def test_ddp_two_processes_split_the_data_and_reduce_the_metrics(task, tmp_path, monkeypatch, judge_path):
    args, metric, steps = TASKS[task]
    args = [*args, f"--evaluation.classifier_path={judge_path}"] if task == "gan" else args
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", f"tasks.{task}", "fit", *DDP, *QUIET, *args, "--trainer.max_epochs=1"]
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-3000:]

    run = tmp_path / "runs" / task / "version_0"
    metrics = read_metrics(run / "metrics.csv")
    assert metrics["step"] == steps  # each process saw half of the epoch
    if metric is None:
        assert {"test/digit_fid", "test/recognisable"} <= set(metrics)
        return
    monkeypatch.chdir(tmp_path)
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    single = importlib.import_module(f"tasks.{task}").cli_main(["test", *QUIET, *args, f"--ckpt_path={best}"])
    assert metrics[metric] == pytest.approx(float(single.trainer.callback_metrics[metric]), abs=1e-6)
