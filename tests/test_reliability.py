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

from tasks.common import DivergenceError, DivergenceGuard

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
