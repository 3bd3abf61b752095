"""Resume is exact: a straight run equals one killed and resumed with `fit --ckpt_path last`, bit for bit.

Every task, killed at an epoch's end or in the middle of one: weights, optimiser state, EMA and
schedulers come back from the checkpoint, the data loader skips the batches already trained on, and
the RNGs are seeded per epoch, batch and sample, so the resumed run sees the same shuffle,
augmentation, noise and dropout as the straight run.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch


class StopAtFirstValidationOfSecondEpoch(pl.Callback):
    """Stands in for a run killed in the middle of its second epoch, after a mid-epoch checkpoint."""

    def on_validation_end(self, trainer, pl_module):
        if trainer.current_epoch == 1 and not trainer.sanity_checking:
            trainer.should_stop = True


class StopAfterFirstEpoch(pl.Callback):
    """Stands in for a run killed after its first epoch (the checkpoint of that epoch is written)."""

    def on_train_epoch_end(self, trainer, pl_module):
        trainer.should_stop = True


COMMON = [
    "--trainer.max_epochs=2",
    "--trainer.limit_train_batches=3",
    "--trainer.limit_val_batches=1",
    "--test_after_fit=false",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
]
TASKS = {
    "resnet": ["--data.source=embedded", "--data.batch_size=16"],
    "lstm": [
        "--data.source=embedded",
        "--data.batch_size=8",
        "--model.net.dim=16",
        "--model.net.layers=2",
        "--model.net.dropout=0.1",
    ],
    "gan": [
        "--data.source=embedded",
        "--data.batch_size=8",
        "--model.net.dim=8",
        "--model.net.z_dim=16",
        "--evaluation.samples=8",
        "--evaluation.test_samples=8",
        "--trainer.check_val_every_n_epoch=1",
    ],
    "transformer": [
        "--data.num_train=256",
        "--data.num_val=32",
        "--data.num_test=32",
        "--data.batch_size=32",
        "--model.net.layers=1",
        "--model.net.dim=32",
        "--model.net.dropout=0.1",
        "--trainer.max_steps=-1",
        "--trainer.val_check_interval=null",
        "--trainer.check_val_every_n_epoch=1",
    ],
}


def last_checkpoint(root: Path) -> dict:
    (path,) = sorted(root.glob("runs/*/version_*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)[-1:]
    return torch.load(path, weights_only=False)


def assert_same(a, b, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{where} differs by {(a.float() - b.float()).abs().max().item():.3g}"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")


def straight_and_killed_then_resumed(task, extra, stop, tmp_path, monkeypatch, judge_path):
    """Run `fit` straight, and again killed by the callback `stop` and resumed with `--ckpt_path last`."""
    cli_main = importlib.import_module(f"tasks.{task}").cli_main
    args = ["fit", *COMMON, *TASKS[task], *extra]
    if task == "gan":
        args.append(f"--evaluation.classifier_path={judge_path}")
    for run in ("straight", "resumed"):
        (tmp_path / run).mkdir()
    monkeypatch.chdir(tmp_path / "straight")
    cli_main(args)
    monkeypatch.chdir(tmp_path / "resumed")
    killed = cli_main([*args, f"--trainer.callbacks+={__name__}.{stop}"])
    resumed = cli_main([*args, "--ckpt_path=last"])
    return killed, resumed


def assert_same_run(tmp_path) -> None:
    straight, again = last_checkpoint(tmp_path / "straight"), last_checkpoint(tmp_path / "resumed")
    assert straight["global_step"] == again["global_step"] > 0
    assert_same(straight["state_dict"], again["state_dict"], "state_dict")  # bit for bit on CPU
    assert_same(straight["optimizer_states"], again["optimizer_states"], "optimizer")
    assert_same(straight["lr_schedulers"], again["lr_schedulers"], "scheduler")


@pytest.mark.parametrize("task", list(TASKS))
def test_kill_and_resume_equals_a_straight_run(task, tmp_path, monkeypatch, judge_path):
    killed, resumed = straight_and_killed_then_resumed(task, [], "StopAfterFirstEpoch", tmp_path, monkeypatch,
                                                       judge_path)  # fmt: skip
    assert killed.trainer.current_epoch == 1 and resumed.trainer.current_epoch == 2
    assert len(list((tmp_path / "resumed").glob("runs/*/version_*"))) == 2  # the killed run's folder is kept
    assert_same_run(tmp_path)


@pytest.mark.parametrize("task", list(TASKS))
def test_kill_mid_epoch_and_resume_equals_a_straight_run(task, tmp_path, monkeypatch, judge_path):
    """Validation (and so last.ckpt) twice per 4-batch epoch: the kill comes after batch 2 of epoch 2."""
    cadence = ["--trainer.limit_train_batches=4", "--trainer.val_check_interval=2",
               "--trainer.check_val_every_n_epoch=1"]  # fmt: skip
    killed, _ = straight_and_killed_then_resumed(task, cadence, "StopAtFirstValidationOfSecondEpoch", tmp_path,
                                                 monkeypatch, judge_path)  # fmt: skip
    assert killed.trainer.fit_loop.epoch_loop.batch_progress.current.completed == 2  # mid-epoch
    assert_same_run(tmp_path)


def test_kill_and_resume_the_cluster_gan_equals_a_straight_run(tmp_path, monkeypatch, judge_path):
    """The unconditional GAN's k-means centroids travel in the checkpoint with the rest of its state."""
    clusters = [
        "--model.condition=Clusters",
        "--model.condition.clusters=4",
        "--model.condition.loss=0.5",
        "--model.g_losses=[{class_path: ModeSeeking, init_args: {weight: 0.3}}]",
        "--model.sampling.best_of=2",
    ]
    _, resumed = straight_and_killed_then_resumed("gan", clusters, "StopAfterFirstEpoch", tmp_path, monkeypatch,
                                                  judge_path)  # fmt: skip
    assert resumed.model.centroids.any()
    assert_same_run(tmp_path)


def test_resume_last_with_nothing_to_resume_says_so(tmp_path, monkeypatch):
    from tasks.resnet import cli_main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no last.ckpt under .*Train first with `fit`"):
        cli_main(["fit", *COMMON, *TASKS["resnet"], "--ckpt_path=last"])
