"""Data shared by the tasks: images (MNIST, Fashion-MNIST, CIFAR-10) from a folder, a download or embedded."""

from .images import DATASETS, DataNotFoundError, ImageDataModule, load_dataset

__all__ = ["DATASETS", "DataNotFoundError", "ImageDataModule", "load_dataset"]
