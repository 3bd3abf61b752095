"""Data of `tasks.gan`: real MNIST digits to train on and to compare against, and seeded noise for `predict`."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

from .images import ImageDataModule
from .sources import DATASETS, Source
from .wrapped import WrappedDataModule


def to_tanh_range(images: torch.Tensor) -> torch.Tensor:
    """Digits as this module gives them (normalised by MNIST's mean and std) -> [-1, 1], the range of G's tanh."""
    mnist = DATASETS["mnist"]
    return (images * mnist.std[0] + mnist.mean[0]) * 2 - 1


class GANDataModule(WrappedDataModule):
    """MNIST digits (no augmentation) for training and evaluation; seeded noise (and labels) for `predict`.

    Args:
        source: where the digits come from: None (the embedded 5k subset), "auto", "folder" or "download".
        root: folder that holds (or will hold) MNIST.
        batch_size: digits per batch; 16, as more and smaller steps beat fewer large ones at equal time.
        num_samples: digits that `predict` generates (0, 1, ..., 9, 0, ... when conditional).
        labels: the digits `predict` draws, e.g. [3, 3, 7] (conditional GANs only); overrides num_samples.
        predict_seed: seed of the noise that `predict` uses.
    """

    def __init__(
        self,
        source: Source | None = None,
        root: str = "data",
        batch_size: int = 16,
        num_samples: int = 64,
        labels: list[int] | None = None,
        predict_seed: int = 0,
    ) -> None:
        super().__init__()
        if labels is not None and not all(0 <= y <= 9 for y in labels):
            raise ValueError(f"labels={labels}: each label is a digit from 0 to 9")
        self.save_hyperparameters()

    def build_inner(self) -> ImageDataModule:
        h = self.hparams
        return ImageDataModule("mnist", h.source, h.root, h.batch_size, augment=False)

    def predict_dataloader(self) -> DataLoader:
        """(seed, label, asked) per digit to draw: the noise of digit i comes from seed (predict_seed, i), its label
        is the one asked for (`labels`) or i mod 10, and `asked` says which."""
        h = self.hparams
        asked = h.labels is not None
        labels = torch.tensor(h.labels) if asked else torch.arange(h.num_samples) % 10
        seeds = h.predict_seed * 1_000_003 + torch.arange(len(labels))
        flags = torch.full((len(labels),), asked)
        return DataLoader(TensorDataset(seeds, labels, flags), batch_size=h.batch_size)
