"""Where a run's files go and how they are written: under the run folder, atomically."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torchvision.utils import save_image

from residual_kit.files import atomic_write
from residual_kit.plotting import save_figure


def run_dir(trainer: pl.Trainer) -> Path:
    """The run's folder: the logger's version folder (`<default_root_dir>/<task>/version_N`), else the root dir.

    Reads the logger, not `trainer.log_dir`: that one is a collective under DDP and would hang a rank-0-only
    writer.
    """
    logger = trainer.logger
    log_dir = getattr(logger, "log_dir", None) or (logger.save_dir if logger is not None else None)
    return Path(log_dir or trainer.default_root_dir)


def resolve_output(trainer: pl.Trainer, path: str | Path | None, default: str) -> Path:
    """A user's output path as given, or `default` inside the run folder."""
    return Path(path) if path else run_dir(trainer) / default


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write a CSV atomically."""
    with atomic_write(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return Path(path)


def save_png(images: torch.Tensor, path: str | Path) -> Path:
    """torchvision's `save_image` (an image or a grid in [0, 1]), atomically."""
    with atomic_write(path) as tmp:
        save_image(images, tmp, format="png")
    return Path(path)


__all__ = ["atomic_write", "resolve_output", "run_dir", "save_figure", "save_png", "write_csv"]
