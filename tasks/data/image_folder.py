"""A folder of one's own images, one subfolder per class (torchvision's `ImageFolder` layout), read lazily.

Only the headers are read up front: classes, channels (grey if every image is), and the size every image is
brought to. Pixels are read from disk when a batch needs them (by the loader's workers, `--data.num_workers`),
so a folder larger than memory trains; mean and standard deviation come from a sample. Bad input is named in one
line before anything trains: a missing folder, no class subfolders, a class without images, an unreadable
image, images of mixed sizes with no `--data.size` to bring them to one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from .image_files import IMAGE_SUFFIXES, image_tensor
from .reproducible import seed_sample

STATS_SAMPLE = 1000  # images whose pixels give the folder's mean and standard deviation


@dataclass(frozen=True)
class ImageFolderData:
    """The images of a class-per-subfolder folder: paths and labels (N,), classes, channels, the side every image
    is brought to, whether that needs resizing, and the pixel statistics of a sample."""

    paths: tuple[Path, ...]
    labels: torch.Tensor
    classes: tuple[str, ...]
    channels: int
    size: int
    resize: bool
    mean: tuple[float, ...]
    std: tuple[float, ...]


def read_image_folder(root: str | Path, size: int | None = None) -> ImageFolderData:
    """Scan `root/<class>/`: every image's header, the classes and channels; `size`: the side every image is brought
    to (None: the images' own, which they must share and be square)."""
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--data.root {root} is not a folder: pass a folder with one subfolder of images per "
                                "class")  # fmt: skip
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{root} has no class subfolders: put each class's images in {root}/<class name>/")
    files = {c: sorted(p for p in (root / c).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) for c in classes}
    empty = [c for c, paths in files.items() if not paths]
    if empty:
        raise ValueError(f"{root}/{empty[0]}/ has no images ({', '.join(IMAGE_SUFFIXES)}): add some or remove it")
    if size is not None and size < 8:
        raise ValueError(f"--data.size={size}: give the side in pixels the images are brought to (8 or more)")
    sizes, grey = {}, True
    for paths in files.values():
        for path in paths:
            try:
                with Image.open(path) as img:
                    sizes[path], grey = img.size, grey and img.mode in ("L", "1", "I;16", "I")
            except (UnidentifiedImageError, OSError) as err:
                raise ValueError(f"{path} is not a readable image ({err}): fix or remove it") from err
    (first, own), *_ = sizes.items()
    if size is None:
        other = next(((p, s) for p, s in sizes.items() if s != own), None)
        if other is not None:
            raise ValueError(f"images of mixed sizes: {first} is {own[0]}x{own[1]}, {other[0]} is {other[1][0]}x"
                             f"{other[1][1]}: pass --data.size=N to bring every image to NxN")  # fmt: skip
        if own[0] != own[1]:
            raise ValueError(f"the images are {own[0]}x{own[1]}, not square: pass --data.size=N (each image's "
                             "shorter side resized to N, its centre cropped)")  # fmt: skip
    side = size or own[0]
    resize = size is not None  # asked for: every image, here and at predict, is brought to the size
    paths = tuple(p for c in classes for p in files[c])
    labels = torch.tensor([label for label, c in enumerate(classes) for _ in files[c]])
    channels = 1 if grey else 3
    sample = [paths[i] for i in np.linspace(0, len(paths) - 1, min(len(paths), STATS_SAMPLE)).round().astype(int)]
    pixels = torch.stack([image_tensor(p, channels, side, resize) for p in sample]).float().div(255)
    pixels = pixels.transpose(0, 1).flatten(1)  # (C, n * H * W)
    mean, std = tuple(pixels.mean(1).tolist()), tuple(pixels.std(1).clamp(min=1e-3).tolist())
    return ImageFolderData(paths, labels, tuple(classes), channels, side, resize, mean, std)


class FolderImages(Dataset):
    """Images of a folder read from disk when asked, brought to the folder's size, then transformed; a random
    transform is seeded per sample (`seed_sample`), as for images in memory."""

    def __init__(self, folder: ImageFolderData, indices: torch.Tensor, transform: v2.Transform, random: bool) -> None:
        self.folder, self.indices, self.transform, self.random = folder, indices.tolist(), transform, random
        self.labels = folder.labels[indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.random:
            seed_sample(i)
        f = self.folder
        x = image_tensor(f.paths[self.indices[i]], f.channels, f.size, f.resize)
        return self.transform(x), self.labels[i]


__all__ = ["FolderImages", "ImageFolderData", "read_image_folder"]
