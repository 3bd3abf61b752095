"""Data of the tasks: image sets (a folder, a download or embedded), digit strips, digit problems."""

from .images import ImageDataModule
from .sources import DATASETS, DataNotFoundError, load_dataset

__all__ = ["DATASETS", "DataNotFoundError", "ImageDataModule", "load_dataset"]
