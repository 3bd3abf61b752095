"""Byte-level language modelling of a real text: a file the user points at, or Python's own standard library.

The default corpus is a fixed list of modules of the Python standard library that runs this code
(about 1 MB of real, varied text that every machine with Python has, offline). Bytes are the tokens
(vocabulary 256), so any file works and bits per byte are comparable across files.
"""

from __future__ import annotations

import hashlib
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


def read_text(path: str | Path) -> bytes:
    """A text file's bytes, or a one-line error for a missing, empty or binary file (nothing is trained on it)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--data.text_file {path} does not exist: pass the path of a text file")
    raw = path.read_bytes()
    if not raw:
        raise ValueError(f"--data.text_file {path} is empty: pass a text file with something to learn")
    sample = raw[:65536]
    if b"\x00" in sample or sample.decode("utf-8", errors="replace").count("\ufffd") > len(sample) // 100:
        raise ValueError(f"--data.text_file {path} looks binary (NUL bytes or mostly invalid UTF-8): pass a text file")
    return raw


def held_out_blocks(
    data: torch.Tensor, fraction: float, block: int
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """(training text, validation blocks, test blocks): every k-th block of `block` bytes is held out
    (k = round(1 / fraction)), so that the held-out bytes are spread across the text rather than one stretch of it,
    and the held-out blocks alternate between validation and test, so both are spread too and share no byte (with a
    single held-out block, its halves). The rest, in order, is the training text."""
    k = max(2, round(1 / fraction))
    blocks = list(data.split(block))
    held = [b for i, b in enumerate(blocks) if i % k == k // 2]
    if not held or len(held[0]) < 4:
        raise ValueError(f"the text ({len(data)} bytes) is too short to hold out a block of {block} bytes")
    if len(held) == 1:
        held = list(held[0].tensor_split(2))
    return torch.cat([b for i, b in enumerate(blocks) if i % k != k // 2]), held[0::2], held[1::2]


class Windows(Dataset):
    """Windows of `block_size + 1` bytes: (input, next-byte target), at random offsets fixed by (seed, i)."""

    def __init__(self, data: torch.Tensor, block_size: int, count: int, seed: int) -> None:
        self.data, self.block_size = data, block_size
        span = len(data) - block_size - 1
        if span <= 0:
            raise ValueError(f"the text ({len(data)} bytes) is shorter than one window of {block_size + 1} bytes")
        self.offsets = torch.randint(0, span, (count,), generator=torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        chunk = self.data[self.offsets[i] : self.offsets[i] + self.block_size + 1].long()
        return chunk[:-1], chunk[1:]


class HeldOutWindows(Dataset):
    """Every held-out byte once: contiguous windows of `block_size + 1` bytes inside each held-out block, each
    window's first byte the last of the one before, so every byte but a block's first is predicted once."""

    def __init__(self, blocks: list[torch.Tensor], block_size: int, count: int | None = None) -> None:
        self.windows = [b[i : i + block_size + 1] for b in blocks for i in range(0, len(b) - 1, block_size)]
        self.windows = [w for w in self.windows if len(w) > 1][:count]
        self.block_size = block_size

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        chunk = self.windows[i].long()
        pad = self.block_size + 1 - len(chunk)  # the last window of a block may be short: its targets are -100
        x = torch.cat([chunk[:-1], chunk.new_zeros(pad)])
        y = torch.cat([chunk[1:], chunk.new_full((pad,), -100)])
        return x, y


class CharTextDataModule(SplitDataModule):
    """Bytes of a text, `val_fraction` of it held out in blocks spread across it, those blocks split in turn into
    validation (learning rates, checkpoints, early decisions) and test (what is reported); training windows at
    random offsets.

    `sha256` and `num_bytes` say which text it was (the standard-library corpus differs between Python versions).

    Args:
        text_file: a text file to model; None: the standard-library corpus (see `STDLIB_FILES`).
        block_size: bytes of context.
        batch_size: windows per batch.
        num_train: training windows per epoch.
        num_val: validation and test windows to score, each (None: every held-out byte).
        val_fraction: the share of the text held out, validation and test together.
        split_block: bytes per block of the split: every round(1 / val_fraction)-th block is held out.
        seed: fixes the training windows.
    """

    vocab_size = 256

    def __init__(
        self,
        text_file: str | None = None,
        block_size: int = 64,
        batch_size: int = 32,
        num_train: int = 32 * 200,
        num_val: int | None = None,
        val_fraction: float = 0.1,
        split_block: int = 4096,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage: str) -> None:
        h = self.hparams
        raw = read_text(h.text_file) if h.text_file else stdlib_text()
        self.sha256, self.num_bytes = hashlib.sha256(raw).hexdigest(), len(raw)
        data = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
        block = min(h.split_block, max(2 * h.block_size, len(data) // 20))  # a short text: smaller blocks
        train, val, test = held_out_blocks(data, h.val_fraction, block)
        self.train_bytes, self.val_blocks, self.test_blocks = train, val, test
        self.train_set = Windows(train, h.block_size, h.num_train, seed=h.seed)
        self.val_set = HeldOutWindows(val, h.block_size, h.num_val)
        self.test_set = HeldOutWindows(test, h.block_size, h.num_val)

    def predict_dataloader(self) -> DataLoader:
        raise ValueError("the byte-level text data has nothing to predict")
