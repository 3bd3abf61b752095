"""What every task shares: atomic file writes, the trainer defaults and the CLI's callbacks."""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from jsonargparse import lazy_instance
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint, ProgressBar, RichProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import CSVLogger

from residual_kit.plotting import save_figure


def atomic_path(path: str | Path) -> tuple[Path, Path]:
    """A temporary sibling of `path` to write to, then `os.replace` it: a killed run leaves no torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    return Path(tmp), path


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write a CSV atomically."""
    tmp, path = atomic_path(path)
    try:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def output_dir(trainer: pl.Trainer) -> Path:
    """Where a run's pictures and tables go: the logger's version folder, else the root dir."""
    return Path(trainer.log_dir or trainer.default_root_dir)


def trainer_defaults(name: str, max_epochs: int, **overrides: Any) -> dict[str, Any]:
    """Defaults that give a good run with no config: auto accelerator, rich progress, CSV logs under runs/."""
    return {
        "accelerator": "auto",
        "max_epochs": max_epochs,
        "logger": lazy_instance(CSVLogger, save_dir="runs", name=name),
        # persistent callbacks: always present, whatever the config adds
        "callbacks": [RichProgressBar(leave=True), LearningRateMonitor(logging_interval="epoch")],
        **overrides,
    }


class TaskCLI(LightningCLI):
    """LightningCLI shared by every task: best and last checkpoints on `monitor`, and `test` after `fit`.

    Subclasses set `monitor`, `mode` and `checkpoint_filename`, and add their own links and writers in
    `add_task_arguments`.
    """

    monitor: str = "val/loss"
    mode: str = "min"
    checkpoint_filename: str = "best-epoch{epoch:02d}"

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": self.monitor,
                "checkpoint.mode": self.mode,
                "checkpoint.save_last": True,
                "checkpoint.filename": self.checkpoint_filename,
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.add_argument(
            "--test_after_fit", type=bool, default=True, help="run `test` on the best checkpoint after `fit`"
        )
        self.add_task_arguments(parser)

    def add_task_arguments(self, parser: LightningArgumentParser) -> None:
        """Links and writers of one task."""

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        # the rich bar and the checkpoint are always-on callbacks; `--trainer.enable_progress_bar=false` and
        # `--trainer.enable_checkpointing=false` must still work, so drop them instead of letting Trainer refuse
        config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        extra = [self._get(self.config_init, key) for key in self._parser(self.subcommand).callback_keys]
        if config.get("enable_progress_bar") is False:
            callbacks = self.trainer_defaults.get("callbacks", [])
            self.trainer_defaults["callbacks"] = [c for c in callbacks if not isinstance(c, ProgressBar)]
        if config.get("enable_checkpointing") is False:
            extra = [c for c in extra if not isinstance(c, ModelCheckpoint)]
        return self._instantiate_trainer(config, extra)

    def after_fit(self) -> None:
        if not self.config[self.subcommand].get("test_after_fit", False) or self.trainer.interrupted:
            return
        best = self.trainer.checkpoint_callback.best_model_path if self.trainer.checkpoint_callback else ""
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best" if best else None)


__all__ = ["TaskCLI", "atomic_path", "output_dir", "save_figure", "trainer_defaults", "write_csv"]
