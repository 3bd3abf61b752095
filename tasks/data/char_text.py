"""Byte-level language modelling of a real text: a file the user points at, or Python's own standard library.

The default corpus is a fixed list of modules of the Python standard library that runs this code
(about 1 MB of real, varied text that every machine with Python has, offline). Bytes are the tokens
(vocabulary 256), so any file works and bits per byte are comparable across files.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from .reproducible import SplitDataModule

STDLIB_FILES = (
    "argparse.py", "ast.py", "calendar.py", "collections/__init__.py", "configparser.py", "csv.py",
    "dataclasses.py", "datetime.py", "difflib.py", "enum.py", "fractions.py", "functools.py", "gettext.py",
    "heapq.py", "inspect.py", "json/decoder.py", "json/encoder.py", "logging/__init__.py", "pathlib.py",
    "pprint.py", "random.py", "shutil.py", "statistics.py", "string.py", "textwrap.py", "threading.py",
    "typing.py", "zipfile.py",
)  # fmt: skip


def stdlib_text() -> bytes:
    """The default corpus: the files above from this Python's standard library, those that exist."""
    root = Path(sysconfig.get_paths()["stdlib"])
    parts = [(root / name).read_bytes() for name in STDLIB_FILES if (root / name).is_file()]
    if not parts:
        raise FileNotFoundError(f"no standard-library sources under {root}: pass --data.text_file=<a text file>")
    return b"\n".join(parts)


class Windows(Dataset):
    """Windows of `block_size + 1` bytes: (input, next-byte target). Random offsets fixed by (seed, i), or in order."""

    def __init__(self, data: torch.Tensor, block_size: int, count: int, seed: int | None) -> None:
        self.data, self.block_size, self.count = data, block_size, count
        span = len(data) - block_size - 1
        if span <= 0:
            raise ValueError(f"the text ({len(data)} bytes) is shorter than one window of {block_size + 1} bytes")
        if seed is None:  # contiguous, non-overlapping windows: the held-out evaluation
            self.offsets = torch.arange(0, span, block_size)[:count]
        else:
            self.offsets = torch.randint(0, span, (count,), generator=torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        chunk = self.data[self.offsets[i] : self.offsets[i] + self.block_size + 1].long()
        return chunk[:-1], chunk[1:]


class CharTextDataModule(SplitDataModule):
    """Bytes of a text, the last `val_fraction` held out; training windows drawn at random offsets.

    Args:
        text_file: a text file to model; None: the standard-library corpus (see `STDLIB_FILES`).
        block_size: bytes of context.
        batch_size: windows per batch.
        num_train: training windows per epoch.
        num_val: held-out windows (contiguous, from the held-out end of the text).
        val_fraction: the share of the text held out (its end).
        seed: fixes the training windows.
    """

    vocab_size = 256

    def __init__(
        self,
        text_file: str | None = None,
        block_size: int = 64,
        batch_size: int = 32,
        num_train: int = 32 * 200,
        num_val: int = 256,
        val_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage: str) -> None:
        h = self.hparams
        if h.text_file is not None and not Path(h.text_file).is_file():
            raise FileNotFoundError(f"--data.text_file {h.text_file} does not exist: pass the path of a text file")
        raw = Path(h.text_file).read_bytes() if h.text_file else stdlib_text()
        data = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
        cut = int(len(data) * (1 - h.val_fraction))
        self.train_set = Windows(data[:cut], h.block_size, h.num_train, seed=h.seed)
        self.val_set = self.test_set = Windows(data[cut:], h.block_size, h.num_val, seed=None)

    def predict_dataloader(self) -> DataLoader:
        raise ValueError("the byte-level text data has nothing to predict")
