"""Randomness that is a function of (seed, epoch, batch, sample): what lets a resumed run replay a straight one.

Four sources of randomness reach a training step, and none may depend on how many random numbers
were drawn before it (a resumed run starts mid-sequence, and Lightning creates the first data iterator
of a run at another moment than later ones):

- the order: `EpochShuffle` draws its permutation from (seed, epoch), like `DistributedSampler`;
  Lightning calls its `set_epoch` before every epoch;
- the augmentation of each sample: datasets call `seed_sample(i)` before transforming sample i, which
  seeds torch from (epoch seed, i), in the main process and in loader workers alike;
- the step itself (dropout, drop path, a GAN's noise): `tasks.core.callbacks.ReproducibleEpochs` calls
  `seed_batch` before every training step, and `seed_epoch` at the start of each epoch;
- where in the epoch a run stopped: `ResumableLoader` is a DataLoader that Lightning checkpoints (it
  has `state_dict` / `load_state_dict`); a run resumed from a checkpoint written mid-epoch skips the
  batches the killed run had already trained on.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    seed_torch(_epoch_seed)
    return _epoch_seed


def seed_torch(seed: int) -> None:
    """`torch.manual_seed` without its cost on a CPU-only machine: there it queues a lazy CUDA seed with a
    formatted stack trace, which per-sample seeding would pay for every sample of every epoch."""
    torch.random.default_generator.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def seed_batch(epoch: int, batch: int, rank: int = 0) -> None:
    """Seed Python, NumPy and torch for one training step of one process, from (seed, epoch, batch, rank)."""
    seed = (global_seed() * 1_000_003 + epoch * 10_007 + batch * 65_537 + rank * 101 + 17) % 2**32
    random.seed(seed)
    np.random.seed(seed)
    seed_torch(seed)


@contextmanager
def fixed_randomness(seed: int) -> Iterator[None]:
    """Run the block with every random stream (and Lightning's global seed) set from `seed`, and give the
    caller's streams back afterwards as they were: work inside it (training the digit judge) gives the same
    result whatever seed the task runs with, and does not change what the task draws next."""
    saved = random.getstate(), np.random.get_state(), os.environ.get("PL_GLOBAL_SEED")
    with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
        random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)
        os.environ["PL_GLOBAL_SEED"] = str(seed)
        try:
            yield
        finally:
            random.setstate(saved[0]), np.random.set_state(saved[1])
            if saved[2] is None:
                os.environ.pop("PL_GLOBAL_SEED", None)
            else:
                os.environ["PL_GLOBAL_SEED"] = saved[2]


def seed_sample(i: int) -> None:
    """Seed torch for the random transform of sample i in this epoch (the epoch seed is set by `seed_epoch`)."""
    if _epoch_seed is not None:
        torch.random.default_generator.manual_seed((_epoch_seed * 7_919 + i * 104_729 + 3) % 2**63)  # CPU transforms


def seed_worker(worker_id: int) -> None:
    """`worker_init_fn`: seed a worker from the epoch seed and its id (torch's own seed when none is set)."""
    seed = (_epoch_seed * 7_919 + worker_id + 1) % 2**32 if _epoch_seed is not None else torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
    seed_torch(seed)


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


class ResumableLoader(DataLoader):
    """A DataLoader that Lightning checkpoints: it counts the batches of the epoch it has given out.

    Lightning saves `state_dict()` with the training loop and calls `load_state_dict` on resume; the
    next iteration of the same epoch then skips the batches the killed run had trained on. Skipping
    loads them and throws them away (cheap next to training, and right under any sampler, DDP's
    included), which is exact because every sample's transform is seeded by its index.
    """

    def __iter__(self) -> Iterator[Any]:
        epoch, resume = self._epoch(), getattr(self, "_resume", None)
        self._resume = None
        skip = resume["batches"] if resume and resume["epoch"] == epoch and resume["batches"] < len(self) else 0
        self._given, self._given_epoch = 0, epoch
        batches = super().__iter__()
        for _ in range(skip):
            next(batches)
            self._given += 1
        for batch in batches:
            self._given += 1
            yield batch

    def _epoch(self) -> int | None:
        return getattr(self.sampler, "epoch", None)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": getattr(self, "_given_epoch", None), "batches": getattr(self, "_given", 0)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume = state_dict


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
    return (ResumableLoader if shuffle else DataLoader)(
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
