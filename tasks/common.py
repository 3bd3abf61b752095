"""What every task shares: atomic file writes, the trainer defaults and the CLI's callbacks."""

from __future__ import annotations

import csv
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from jsonargparse import lazy_instance
from pytorch_lightning.callbacks import Callback, LearningRateMonitor, ModelCheckpoint, ProgressBar, RichProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import CSVLogger

from residual_kit.plotting import save_figure


def atomic_path(path: str | Path) -> tuple[Path, Path]:
    """A temporary sibling of `path` to write to, then `os.replace` it: a killed run leaves no torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the final file should read like any other
    return Path(tmp), path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or gradient."""


class DivergenceGuard(Callback):
    """Stop a run at the first non-finite loss or gradient, naming the step, the last finite loss and the fix.

    It raises instead of setting `should_stop`, so no checkpoint of the broken weights is written: the
    last good `last.ckpt` (and the best one) stay as they were.

    Args:
        check_gradients: also check the gradient norm after each backward (one reduction per step).
    """

    def __init__(self, check_gradients: bool = True) -> None:
        self.check_gradients = check_gradients
        self.last_finite: float | None = None

    def _fail(self, trainer: pl.Trainer, what: str) -> None:
        last = f"{self.last_finite:.4g}" if self.last_finite is not None else "none yet"
        raise DivergenceError(
            f"{what} at step {trainer.global_step} (epoch {trainer.current_epoch}); last finite loss: {last}. "
            "Likely fixes: a lower learning rate (--model.lr), a warm-up, gradient clipping "
            "(--trainer.gradient_clip_val=1.0) or pre-norm (--model.placement=pre). Checkpoints of earlier "
            "steps are untouched; resume from one with --ckpt_path."
        )

    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.check_gradients:
            return
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        if grads and not torch.isfinite(torch.stack([g.detach().float().norm() for g in grads]).sum()):
            self._fail(trainer, "non-finite gradient")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, i: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        values = [loss] if isinstance(loss, torch.Tensor) else []
        if not values:  # manual optimisation returns nothing: read the logged training losses
            values = [v for k, v in trainer.callback_metrics.items() if k.startswith("train/") and "loss" in k]
        for value in values:
            value = float(value)
            if not math.isfinite(value):
                self._fail(trainer, f"non-finite loss ({value})")
            self.last_finite = value


USER_ERRORS: tuple[type[BaseException], ...] = (DivergenceError, FileNotFoundError, ValueError, TypeError)


def run(cli_main: Callable[..., Any]) -> None:
    """Entry point of `python -m tasks.<name>`: a user error prints one line naming it and exits with 1."""
    try:
        cli_main()
    except USER_ERRORS as err:
        if os.environ.get("RESIDUAL_KIT_TRACEBACK"):
            raise
        print(f"error: {err}\n(set RESIDUAL_KIT_TRACEBACK=1 for the full traceback)", file=sys.stderr)
        sys.exit(1)


def trainer_defaults(name: str, max_epochs: int, **overrides: Any) -> dict[str, Any]:
    """Defaults that give a good run with no config: auto accelerator, rich progress, CSV logs under runs/."""
    return {
        "accelerator": "auto",
        "max_epochs": max_epochs,
        "logger": lazy_instance(CSVLogger, save_dir="runs", name=name),
        # persistent callbacks: always present, whatever the config adds
        "callbacks": [RichProgressBar(leave=True), LearningRateMonitor(logging_interval="epoch"), DivergenceGuard()],
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


__all__ = [
    "DivergenceError",
    "DivergenceGuard",
    "TaskCLI",
    "atomic_path",
    "output_dir",
    "run",
    "save_figure",
    "trainer_defaults",
    "write_csv",
]
