"""Image files that `predict` reads: listed from paths or folders, every header checked before any compute."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


class ImageFiles(Dataset):
    """Image files for `predict`: each must have the model's size, unless the model was trained on images brought to
    its size (`resize`), as these are then; colour mode is converted."""

    def __init__(
        self, paths: list[Path], channels: int, size: int, transform: v2.Transform, resize: bool = False
    ) -> None:
        self.paths, self.channels, self.size, self.transform, self.resize = paths, channels, size, transform, resize
        check_image_sizes(paths, lambda w, h: resize or (w, h) == (size, size), f"the model reads {size}x{size} images",
                          f"resize them first (e.g. PIL: Image.open(p).resize(({size}, {size})))")  # fmt: skip

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        x = image_tensor(self.paths[i], self.channels, self.size, self.resize)
        return self.transform(x), str(self.paths[i])


def image_tensor(image: Any, channels: int, size: int, resize: bool = False) -> torch.Tensor:
    """An image file or PIL image as uint8 (channels, size, size), or a ValueError that names what is wrong; with
    `resize`, its shorter side resized to `size` and its centre cropped."""
    img = open_image(image, "L" if channels == 1 else "RGB")
    if not resize and img.size != (size, size):
        raise ValueError(
            f"{getattr(image, 'filename', None) or image} is {img.size[0]}x{img.size[1]} but the model reads "
            f"{size}x{size} images: resize it first (e.g. PIL: Image.open(p).resize(({size}, {size})))"
        )
    x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())
    x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)  # (C, H, W)
    if x.shape[-2:] != (size, size):  # only with resize: shorter side to size, centre cropped
        x = v2.CenterCrop(size)(v2.Resize(size, antialias=True)(x))
    return x


def open_image(path: Path | Any, mode: str) -> Any:
    """An image file (or a PIL image) as a PIL image in `mode` ("L", "RGB"), or a ValueError that names the file."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(path, Image.Image):
        return path.convert(mode)
    try:
        with Image.open(path) as img:
            return img.convert(mode)
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{path} is not a readable image ({err})") from err


def check_image_sizes(paths: Sequence[Path], ok: Callable[[int, int], bool], need: str, fix: str) -> None:
    """Read every image's header before `predict` starts and name all that are unreadable or of the wrong size."""
    from PIL import Image, UnidentifiedImageError

    bad: list[str] = []
    for path in paths:
        try:
            with Image.open(path) as img:
                w, h = img.size
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"{path} is not a readable image ({err})") from err
        if not ok(w, h):
            bad.append(f"{path} is {w}x{h}")
    if bad:
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        raise ValueError(f"{'; '.join(bad[:3])}{more} but {need}: {fix}")


def list_images(spec: str | Path | Sequence[str | Path]) -> list[Path]:
    """Image paths from a folder, a file, or a list of files (sorted, so the CSV order is stable)."""
    items = [spec] if isinstance(spec, (str, Path)) else list(spec)
    paths: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            paths += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            paths.append(item)
        else:
            raise FileNotFoundError(f"predict path {item} does not exist: pass image files or a folder of them")
    if not paths:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {items}")
    return paths
