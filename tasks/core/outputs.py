"""Where a run's files go and how they are written: under the run folder, atomically (to a temporary sibling,
then `os.replace`), so a killed run never leaves a torn file that a later run trusts."""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torchvision.utils import save_image

PARTIAL = ".partial"  # the suffix of a file being written; one left behind is from a killed process


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed.

    Readers see the old file or the new one, never half of one. Parent folders are made on demand.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PARTIAL)
    os.close(fd)
    tmp = Path(name)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; the final file should read like any other
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no screen needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG (atomically), then close it."""
    plt = pyplot()
    try:
        with atomic_write(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    return Path(path)


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


__all__ = ["PARTIAL", "atomic_write", "pyplot", "resolve_output", "run_dir", "save_figure", "save_png", "write_csv"]
