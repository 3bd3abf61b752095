"""Epochs whose randomness is a function of (seed, epoch, rank): what lets a resumed run replay a straight one.

Three sources of randomness reach a training epoch: the shuffle, the main process's RNGs (augmentation,
dropout, noise) and the loader workers' RNGs. Lightning creates the first data iterator of a run at a
different moment than later ones (and a resumed run starts mid-sequence), so none of them may depend on
how many random numbers were drawn before the epoch began:

- `EpochShuffle` draws its permutation from (seed, epoch), like `DistributedSampler`; Lightning calls
  its `set_epoch` before every epoch.
- `tasks.callbacks.ReproducibleEpochs` calls `seed_epoch` at the start of each epoch (and of a resumed run),
  which seeds Python, NumPy and torch from (seed, epoch, rank).
- `seed_worker` seeds each loader worker from that epoch seed and its worker id.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

_epoch_seed: int | None = None  # set in the main process before the epoch's workers are forked


def global_seed() -> int:
    """The seed `seed_everything` set (PL_GLOBAL_SEED), else 0."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


def seed_epoch(epoch: int, rank: int = 0, seed: int | None = None) -> int:
    """Seed Python, NumPy and torch (CUDA included) for one epoch of one process; returns the seed used."""
    global _epoch_seed
    base = global_seed() if seed is None else seed
    _epoch_seed = (base * 1_000_003 + epoch * 10_007 + rank * 101) % 2**32
    random.seed(_epoch_seed)
    np.random.seed(_epoch_seed)
    torch.manual_seed(_epoch_seed)
    return _epoch_seed


def seed_worker(worker_id: int) -> None:
    """`worker_init_fn`: seed a worker from the epoch seed and its id (torch's own seed when none is set)."""
    seed = (_epoch_seed * 7_919 + worker_id + 1) % 2**32 if _epoch_seed is not None else torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class EpochShuffle(Sampler[int]):
    """A random order fixed by (seed, epoch), so an epoch's order does not depend on what ran before it.

    Without a `set_epoch` call it behaves as `RandomSampler`: each pass draws a new order from torch's RNG.
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed, self.epoch = n, seed, None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator()
        if self.epoch is None:
            g.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
        else:
            g.manual_seed((global_seed() * 1_000_003 + self.seed * 10_007 + self.epoch) % 2**63)
        yield from torch.randperm(self.n, generator=g).tolist()


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    num_workers: int = 0,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    drop_last: bool = False,
) -> DataLoader:
    """A DataLoader whose training epochs replay exactly after a resume (see the module docstring)."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochShuffle(len(dataset), seed) if shuffle else None,
        num_workers=num_workers,
        collate_fn=collate_fn,
        pin_memory=torch.cuda.is_available(),
        drop_last=drop_last,
        worker_init_fn=seed_worker if num_workers > 0 else None,
        persistent_workers=False,  # workers are re-forked, and so re-seeded, every epoch
        generator=torch.Generator().manual_seed(seed),  # the iterator's base seed: not from the global RNG
    )


class SplitDataModule(pl.LightningDataModule):
    """A data module whose `setup` makes `train_set`, `val_set` and `test_set`: one `make_loader` each.

    Subclasses with other loader settings (a collate function, workers, dropping the last partial
    training batch) override `loader_options`; `self.hparams` must hold `batch_size` and `seed`.
    """

    train_set: Dataset
    val_set: Dataset
    test_set: Dataset

    def loader_options(self, train: bool) -> dict[str, Any]:
        return {}

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        h = self.hparams
        return make_loader(dataset, h.batch_size, shuffle, h.seed, **self.loader_options(shuffle))

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)
