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
from pytorch_lightning.callbacks import LearningRateMonitor, RichProgressBar
from pytorch_lightning.loggers import CSVLogger


def atomic_path(path: str | Path) -> tuple[Path, Path]:
    """A temporary sibling of `path` to write to, then `os.replace` it: a killed run leaves no torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    return Path(tmp), path


def save_figure(fig: Any, path: str | Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    tmp, path = atomic_path(path)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


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


__all__ = ["atomic_path", "output_dir", "save_figure", "trainer_defaults", "write_csv"]
