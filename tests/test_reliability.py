"""Reliability: the divergence guard, and user errors as one clear line with a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from residual_kit.models import ResNetConfig
from tasks.core.callbacks import DivergenceError, DivergenceGuard
from tasks.core.checkpoints import check_checkpoint
from tasks.resnet import ImageClassifier

ROOT = Path(__file__).resolve().parents[1]


class Blows(pl.LightningModule):
    """A linear model whose loss turns non-finite at a chosen step."""

    def __init__(self, nan_at: int, where: str = "loss") -> None:
        super().__init__()
        self.net, self.nan_at, self.where = nn.Linear(2, 1), nan_at, where

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = self.net(x).pow(2).mean()
        if self.global_step == self.nan_at:
            if self.where == "loss":
                return loss * float("nan")
            x = x.clone().requires_grad_(True)
            return loss + (x.sum() * 0 + torch.sqrt(torch.tensor(-1.0)) * self.net.weight.sum())
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(64, 2)), batch_size=8)


@pytest.mark.parametrize("where", ["loss", "gradient"])
def test_guard_stops_at_the_first_non_finite_step_and_keeps_the_good_checkpoint(tmp_path, where):
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True, every_n_train_steps=1)
    trainer = pl.Trainer(max_steps=20, callbacks=[DivergenceGuard(), ckpt], logger=False, accelerator="cpu",
                         enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    with pytest.raises(DivergenceError, match=r"non-finite .* at step 5 .*last finite loss: \d.*lower learning rate"):
        trainer.fit(Blows(nan_at=5, where=where))
    state = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert state["global_step"] == 5 and all(torch.isfinite(v).all() for v in state["state_dict"].values())


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_missing_data_folder_is_one_line_and_exit_1(tmp_path):
    out = run_cli("tasks.resnet", "fit", "--data.source=folder", f"--data.root={tmp_path / 'nope'}", cwd=tmp_path)
    assert out.returncode == 1
    assert "error: no source could provide mnist" in out.stderr and "Traceback" not in out.stderr
    assert "copy the four MNIST IDX files" in out.stderr


def test_missing_checkpoint_is_one_line_and_exit_1(tmp_path):
    out = run_cli("tasks.lstm", "test", f"--ckpt_path={tmp_path / 'missing.ckpt'}", "--data.source=embedded",
                  cwd=tmp_path)  # fmt: skip
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "missing.ckpt" in out.stderr


def test_config_typo_names_the_key(tmp_path):
    out = run_cli("tasks.transformer", "fit", "--model.layerz=3", cwd=tmp_path)
    assert out.returncode != 0 and "layerz" in out.stderr and "Traceback" not in out.stderr


class Linear(pl.LightningModule):
    def __init__(self, data: torch.Tensor) -> None:
        super().__init__()
        self.net, self.data = nn.Linear(2, 1), data

    def training_step(self, batch, batch_idx):
        return self.net(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(self.data), batch_size=4)


class Overflows(Blows):
    """Scaled fp16 gradients overflow (inf) on the chosen steps, as a GradScaler sees in normal training."""

    def __init__(self, overflow_at: set[int]) -> None:
        super().__init__(nan_at=-1)
        self.overflow_at = overflow_at

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return loss.float() * 1e30 if self.global_step in self.overflow_at else loss  # scaled x 65536: inf in fp16


def fp16_trainer(**kwargs) -> pl.Trainer:
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8, growth_interval=1000)  # no overflow of its own
    plugin = pl.plugins.MixedPrecision("16-mixed", "cpu", scaler=scaler)
    return pl.Trainer(accelerator="cpu", plugins=[plugin], logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, **kwargs)  # fmt: skip


def test_a_skipped_gradscaler_step_is_not_a_divergence():
    """fp16 with a GradScaler: an overflowed step is skipped (scale halved) and training goes on to the end."""
    model = Overflows({3})
    trainer = fp16_trainer(max_steps=8, callbacks=[DivergenceGuard()])
    trainer.fit(model)
    assert trainer.global_step == 8 and all(torch.isfinite(p).all() for p in model.parameters())
    assert trainer.precision_plugin.scaler.get_scale() < 2.0**8  # the scaler did skip a step


def test_gradscaler_overflow_that_never_ends_is_a_divergence_named_by_step():
    trainer = fp16_trainer(max_steps=30, callbacks=[DivergenceGuard(skipped_steps=4)])
    with pytest.raises(DivergenceError, match=r"non-finite gradient in more than 4 steps in a row .* at step 6"):
        trainer.fit(Overflows(set(range(2, 30))))


def test_guard_read_every_n_steps_still_names_the_step_and_saves_nothing_broken(tmp_path):
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True, every_n_train_steps=1)
    trainer = pl.Trainer(max_steps=20, callbacks=[DivergenceGuard(every_n_steps=8), ckpt], logger=False,
                         accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    with pytest.raises(DivergenceError, match=r"non-finite gradient at step 5 "):
        trainer.fit(Blows(nan_at=5, where="gradient"))
    state = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values())


def test_non_finite_input_batch_is_refused_before_it_reaches_the_weights():
    data = torch.randn(16, 2)
    data[9, 1] = float("nan")  # in the third batch
    model = Linear(data)
    trainer = pl.Trainer(max_epochs=1, callbacks=[DivergenceGuard()], logger=False, accelerator="cpu",
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    with pytest.raises(ValueError, match=r"training batch 2 of epoch 0 holds 1 non-finite input values"):
        trainer.fit(model)
    assert trainer.global_step == 2 and all(torch.isfinite(p).all() for p in model.parameters())


def fast_fit(task: str, tmp_path: Path, *extra: str) -> Path:
    """Fit one tiny epoch of a task in a subprocess; returns its last.ckpt."""
    args = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1",
            "--test_after_fit=false", "--trainer.enable_progress_bar=false", *extra]  # fmt: skip
    out = run_cli(f"tasks.{task}", "fit", *args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    return tmp_path / "runs" / task / "version_0" / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def resnet_ckpt(tmp_path_factory) -> Path:
    return fast_fit("resnet", tmp_path_factory.mktemp("resnet"), "--data.source=embedded", "--data.batch_size=16")


def test_checkpoint_of_another_task_is_one_line_and_exit_1(tmp_path, resnet_ckpt):
    out = run_cli("tasks.transformer", "test", f"--ckpt_path={resnet_ckpt}", "--data.num_test=32", cwd=tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "is not a checkpoint of DigitTransformer (tasks.transformer)" in out.stderr
    assert "python -m tasks.transformer fit" in out.stderr


def test_checkpoint_with_other_model_options_names_the_weight_and_the_fix(resnet_ckpt):
    with pytest.raises(ValueError, match=r"trained with other model options: .* is \(16, 1, 3, 3\) there .*--config"):
        check_checkpoint(resnet_ckpt, ImageClassifier(ResNetConfig(width_multiplier=2)), "resnet")
    check_checkpoint(resnet_ckpt, ImageClassifier(), "resnet")  # the same options pass


def test_truncated_checkpoint_is_named_and_left_alone(tmp_path, resnet_ckpt):
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(resnet_ckpt.read_bytes()[:5000])
    out = run_cli("tasks.resnet", "fit", f"--ckpt_path={broken}", "--data.source=embedded", cwd=tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "cannot be read (truncated or not a checkpoint)" in out.stderr
    assert broken.stat().st_size == 5000 and not (tmp_path / "runs").exists()  # nothing written, nothing trained
