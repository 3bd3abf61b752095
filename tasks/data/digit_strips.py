"""Strips of handwritten digits: k real MNIST digits side by side on one 28 x W canvas, labelled by the string.

Digits come from `ImageDataModule`'s MNIST splits (the embedded 5k subset offline, full MNIST when a
folder or download has it): train strips use train digits only, test strips test digits only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .image_files import check_image_sizes, list_images, open_image
from .images import ImageDataModule
from .reproducible import SplitDataModule
from .sources import Source

MEAN, STD = 0.1307, 0.3081  # MNIST pixel statistics


def make_strip(
    digits: torch.Tensor, width: int, rng: np.random.Generator, max_gap: int = 6, jitter: int = 2
) -> torch.Tensor:
    """Paste `digits` (k, 28, 28) uint8 left to right on a (28, width) canvas with random gaps and jitter.

    Gaps run from -4 (MNIST digits have ~4 blank columns each side, so they touch but stay legible) to
    `max_gap`, shrunk if the strip would not fit; overlaps keep the brighter pixel.
    """
    k, size = len(digits), digits.shape[-1]
    gaps = rng.integers(-4, max_gap + 1, size=max(k - 1, 0))
    while size * k + gaps.sum() > width:
        gaps = np.maximum(gaps - 1, -4)
        if size * k + gaps.sum() > width and (gaps == -4).all():
            raise ValueError(f"{k} digits do not fit a strip {width} wide: use width >= {size * k - 4 * (k - 1)}")
    used = size * k + int(gaps.sum())
    x = int(rng.integers(0, width - used + 1))
    canvas = torch.zeros(size, width, dtype=torch.uint8)
    for i, digit in enumerate(digits):
        dy = int(rng.integers(-jitter, jitter + 1))
        digit = torch.roll(digit, dy, dims=0)
        if dy > 0:
            digit[:dy] = 0
        elif dy < 0:
            digit[dy:] = 0
        canvas[:, x : x + size] = torch.maximum(canvas[:, x : x + size], digit)
        x += size + (int(gaps[i]) if i < k - 1 else 0)
    return canvas


class DigitStrips(Dataset):
    """`length` strips drawn from one pool of digit images; strip i is fixed by (seed, i).

    Items are (image (1, 28, width) float, label (max_digits,) long padded with -1, length).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        length: int,
        min_digits: int,
        max_digits: int,
        width: int,
        seed: int,
    ) -> None:
        self.images, self.labels = images.reshape(-1, 28, 28), labels
        self.length, self.min_digits, self.max_digits, self.width, self.seed = (
            length, min_digits, max_digits, width, seed)  # fmt: skip

    def __len__(self) -> int:
        return self.length

    def draw(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Strip i as (uint8 canvas (28, width), digit labels (k,), pool indices (k,))."""
        rng = np.random.default_rng([self.seed, i])
        k = int(rng.integers(self.min_digits, self.max_digits + 1))
        idx = torch.from_numpy(rng.integers(0, len(self.labels), size=k))
        return make_strip(self.images[idx], self.width, rng), self.labels[idx], idx

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        canvas, digits, _ = self.draw(i)
        label = torch.full((self.max_digits,), -1, dtype=torch.long)
        label[: len(digits)] = digits
        return normalize(canvas), label, len(digits)


def normalize(canvas: torch.Tensor) -> torch.Tensor:
    """uint8 (28, W) -> float (1, 28, W), MNIST-normalised."""
    return ((canvas.float() / 255 - MEAN) / STD).unsqueeze(0)


class StripFiles(Dataset):
    """Strip PNGs for `predict`: grayscale (colour is converted), 28 pixels high, at most `width` wide."""

    def __init__(self, paths: list[Path], width: int) -> None:
        self.paths, self.width = paths, width
        check_image_sizes(paths, lambda w, h: h == 28 and w <= width, f"strips are 28 pixels high and at most "
                          f"{width} wide", "scale them to height 28 (white digits on black, as MNIST), or train "
                          "with a larger --data.width")  # fmt: skip

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        return strip_tensor(self.paths[i], self.width), str(self.paths[i])


def strip_tensor(image: Any, width: int) -> torch.Tensor:
    """A strip (an image file or PIL image, 28 pixels high, at most `width` wide) as the reader's normalised input
    (1, 28, width), padded with black on the right; or a ValueError that says what is wrong."""
    img = open_image(image, "L")
    w, h = img.size
    if h != 28 or w > width:
        raise ValueError(
            f"{getattr(image, 'filename', None) or image} is {w}x{h} but strips are 28 pixels high and at most "
            f"{width} wide: scale it to height 28 (white digits on black, as MNIST), or train with --data.width={w}"
        )
    canvas = torch.zeros(28, width, dtype=torch.uint8)
    canvas[:, :w] = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())
    return normalize(canvas)


def collate(batch: list[tuple[torch.Tensor, torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    images, labels, lengths = zip(*batch, strict=True)
    return torch.stack(images), torch.stack(labels), torch.tensor(lengths)


class DigitStripDataModule(SplitDataModule):
    """Strips of 1 to `max_digits` handwritten digits for sequence reading (CTC).

    Args:
        source: where the MNIST digits come from: None (the embedded 5k subset), "auto", "folder" or "download".
        root: folder that holds (or will hold) MNIST.
        min_digits: fewest digits per strip.
        max_digits: most digits per strip.
        width: canvas width in pixels; None fits `max_digits` digits with room to spare (28 * k + 8).
        num_train: training strips (fixed: the same strips each epoch).
        num_val: validation strips (from the validation digits).
        num_test: test strips (from the test digits only).
        batch_size: strips per batch.
        seed: fixes the digit split and every strip.
        predict_path: strip PNGs or a folder of them, for `predict`.
    """

    def __init__(
        self,
        source: Source | None = None,
        root: str = "data",
        min_digits: int = 1,
        max_digits: int = 5,
        width: int | None = None,
        num_train: int = 20_000,
        num_val: int = 1_000,
        num_test: int = 2_000,
        batch_size: int = 64,
        seed: int = 0,
        predict_path: str | list[str] | None = None,
    ) -> None:
        super().__init__()
        if not 1 <= min_digits <= max_digits:
            raise ValueError(f"need 1 <= min_digits <= max_digits, got {min_digits} and {max_digits}")
        self.save_hyperparameters()
        self.width = width if width is not None else 28 * max_digits + 8
        self.num_classes = 11  # blank + ten digits
        self.predict_paths: list[Path] = []

    def setup(self, stage: str) -> None:
        h = self.hparams
        if stage == "predict":
            if h.predict_path is None:
                raise ValueError("predict needs strips: pass --data.predict_path=<PNG file or folder>")
            self.predict_paths = list_images(h.predict_path)
            return
        if hasattr(self, "train_set"):
            return
        digits = ImageDataModule("mnist", source=h.source, root=h.root, augment=False, seed=h.seed)
        digits.setup("fit")
        self.source_used = digits.source_used
        args = (h.min_digits, h.max_digits, self.width)
        pools = {"train": digits.train_set, "val": digits.val_set, "test": digits.test_set}
        sizes = {"train": h.num_train, "val": h.num_val, "test": h.num_test}
        sets = {
            name: DigitStrips(pool.images, pool.labels, sizes[name], *args, seed=h.seed * 1000 + i)
            for i, (name, pool) in enumerate(pools.items())
        }
        self.train_set, self.val_set, self.test_set = sets["train"], sets["val"], sets["test"]

    def loader_options(self, train: bool) -> dict[str, Any]:
        return {"collate_fn": collate}

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(StripFiles(self.predict_paths, self.width), batch_size=self.hparams.batch_size)


__all__ = ["DigitStripDataModule", "DigitStrips", "StripFiles", "make_strip"]
