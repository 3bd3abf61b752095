"""A folder of one's own images, one subfolder per class (torchvision's `ImageFolder` layout).

Channels, size, mean and standard deviation are read from the images, so the model that trains on them saves
the preprocessing it needs. Bad input is named in one line before anything trains: a missing folder, no class
subfolders, a class without images, an unreadable image, images of mixed sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .image_files import IMAGE_SUFFIXES, open_image


@dataclass(frozen=True)
class ImageFolderData:
    """The images (N, C, H, W) uint8 and labels (N,) of a class-per-subfolder folder, with its classes and stats."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def size(self) -> int:
        return self.images.shape[-1]


def read_image_folder(root: str | Path) -> ImageFolderData:
    """Read every image under `root/<class>/`: grey if every image is, else RGB; one size for all."""
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
    sizes, grey = {}, True
    for paths in files.values():
        for path in paths:
            try:
                with Image.open(path) as img:
                    sizes[path], grey = img.size, grey and img.mode in ("L", "1", "I;16", "I")
            except (UnidentifiedImageError, OSError) as err:
                raise ValueError(f"{path} is not a readable image ({err}): fix or remove it") from err
    (first, size), *_ = sizes.items()
    other = next(((p, s) for p, s in sizes.items() if s != size), None)
    if other is not None:
        raise ValueError(f"images of mixed sizes: {first} is {size[0]}x{size[1]}, {other[0]} is {other[1][0]}x"
                         f"{other[1][1]}: resize them to one size")  # fmt: skip
    if size[0] != size[1]:
        raise ValueError(f"the images are {size[0]}x{size[1]}: the ResNets read square images, crop or pad them")
    mode = "L" if grey else "RGB"
    arrays, labels = [], []
    for label, c in enumerate(classes):
        for path in files[c]:
            array = np.asarray(open_image(path, mode), dtype=np.uint8)
            arrays.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
            labels.append(label)
    images = torch.from_numpy(np.stack(arrays))
    pixels = images.float().div(255).transpose(0, 1).flatten(1)  # (C, N * H * W)
    mean = tuple(pixels.mean(1).tolist())
    std = tuple(pixels.std(1).clamp(min=1e-3).tolist())
    return ImageFolderData(images, torch.tensor(labels), tuple(classes), mean, std)


__all__ = ["ImageFolderData", "read_image_folder"]
