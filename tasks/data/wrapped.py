"""`WrappedDataModule`: a data module whose fit, validate and test data are another data module's."""

from __future__ import annotations

import pytorch_lightning as pl
from torch.utils.data import DataLoader


class WrappedDataModule(pl.LightningDataModule):
    """Training, validation and test data come from `inner`; `predict` is the subclass's own.

    `inner` is built by `build_inner()` on first use, not in `__init__`, whose arguments Lightning's
    `save_hyperparameters` would otherwise take for this module's.
    """

    _inner: pl.LightningDataModule | None = None

    def build_inner(self) -> pl.LightningDataModule:
        raise NotImplementedError

    @property
    def inner(self) -> pl.LightningDataModule:
        if self._inner is None:
            self._inner = self.build_inner()
        return self._inner

    def prepare_data(self) -> None:
        self.inner.prepare_data()

    def setup(self, stage: str) -> None:
        if stage != "predict":
            self.inner.setup(stage)

    def train_dataloader(self) -> DataLoader:
        return self.inner.train_dataloader()

    def val_dataloader(self) -> DataLoader:
        return self.inner.val_dataloader()

    def test_dataloader(self) -> DataLoader:
        return self.inner.test_dataloader()


__all__ = ["WrappedDataModule"]
