"""`CSVWriter`: `predict`'s results as a CSV in the run folder, one row per input, each also printed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import pytorch_lightning as pl
from pytorch_lightning.callbacks import BasePredictionWriter

from tasks.core.outputs import resolve_output, write_csv


class CSVWriter(BasePredictionWriter):
    """Write `predict`'s rows to a CSV (replaced atomically) and say where; a task says what a row is.

    Args:
        output: CSV file to write; default the task's file name (`filename`) in the run folder.
    """

    filename: ClassVar[str]
    things: ClassVar[str]  # what a row is, in the closing line ("wrote 3 answers to ...")
    columns: ClassVar[tuple[str, ...]] = ()  # the header, where it does not depend on the model

    def __init__(self, output: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.output = output

    def header(self, pl_module: Any, predictions: Any) -> list[str]:
        return list(self.columns)

    def rows(self, pl_module: Any, predictions: Any) -> list[Sequence[Any]]:
        """The rows of every batch, in order (a task whose `predict_step` returns rows needs no other)."""
        return [row for batch in predictions for row in batch]

    def show(self, row: Sequence[Any]) -> str | None:
        """The line printed for a row (None: none)."""
        return None

    def write_on_epoch_end(self, trainer: pl.Trainer, pl_module: Any, predictions: Any, batch_indices: Any) -> None:
        rows = self.rows(pl_module, predictions)
        for line in filter(None, map(self.show, rows)):
            print(line)
        out = write_csv(resolve_output(trainer, self.output, self.filename), self.header(pl_module, predictions), rows)
        print(f"wrote {len(rows)} {self.things} to {out}")


__all__ = ["CSVWriter"]
