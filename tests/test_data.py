"""The image data layer: every source, the offline fallback, the split, and bad files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from tasks.data import DataNotFoundError, ImageDataModule, load_dataset
from tasks.data import sources as images_mod
from tasks.data.idx import CorruptFileError, read_idx, write_idx
from tasks.data.reproducible import seed_epoch


def write_tiny_idx(folder: Path, n_train: int = 60, n_test: int = 20, gz: bool = True) -> None:
    """A tiny MNIST-layout folder: image i is filled with the value of its label."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n, dtype=np.uint8) % 10
        images = np.repeat(labels[:, None, None], 28 * 28, axis=1).reshape(n, 28, 28)
        write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", labels)


def write_tiny_cifar(folder: Path, per_batch: int = 8) -> None:
    """A tiny CIFAR-10 python-pickle folder in torchvision's layout."""
    import pickle

    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {"data": rng.integers(0, 255, (per_batch, 3072), dtype=np.uint8), "labels": list(range(per_batch))}
        (batches / name).write_bytes(pickle.dumps(entry))


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Tests never reach the network: a download attempt fails the way an offline machine does."""

    def offline(*args, **kwargs):
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(images_mod, "download", offline)


def test_idx_round_trip(tmp_path):
    array = np.random.default_rng(0).integers(0, 255, (3, 28, 28), dtype=np.uint8)
    for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz"):
        write_idx(tmp_path / name, array)
        assert torch.equal(read_idx(tmp_path / name), torch.from_numpy(array))


def test_truncated_idx_is_named(tmp_path):
    write_tiny_idx(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CorruptFileError, match="truncated") as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_corrupt_gzip_is_named(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(b"\x00" * 100)[:30])
    with pytest.raises(CorruptFileError, match="gzip"):
        read_idx(path)


def test_folder_source_torchvision_layout(tmp_path):
    write_tiny_idx(tmp_path / "MNIST" / "raw")
    splits, used = load_dataset("mnist", "folder", tmp_path)
    assert used == "folder"
    x, y = splits["train"]
    assert x.shape == (60, 1, 28, 28) and x.dtype == torch.uint8
    assert torch.equal(x[:, 0, 0, 0].long(), y)  # pixels were written as the label
    assert splits["test"][0].shape == (20, 1, 28, 28)


def test_folder_source_raw_files_in_root(tmp_path):
    write_tiny_idx(tmp_path, gz=False)
    splits, _ = load_dataset("fashion_mnist", "folder", tmp_path)
    assert len(splits["train"][1]) == 60


def test_folder_source_cifar10(tmp_path):
    write_tiny_cifar(tmp_path)
    splits, used = load_dataset("cifar10", "auto", tmp_path)
    assert used == "folder"
    assert splits["train"][0].shape == (40, 3, 32, 32) and splits["test"][0].shape == (8, 3, 32, 32)


def test_corrupt_cifar_batch_is_named(tmp_path):
    write_tiny_cifar(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(b"garbage")
    with pytest.raises(CorruptFileError, match="data_batch_3"):
        load_dataset("cifar10", "folder", tmp_path)


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="Debian dataset-fashion-mnist absent"
)
def test_fashion_mnist_from_the_debian_package(tmp_path):
    splits, used = load_dataset("fashion_mnist", "folder", tmp_path)
    assert used == "folder"
    assert splits["train"][0].shape == (60000, 1, 28, 28) and splits["test"][0].shape == (10000, 1, 28, 28)


def test_auto_falls_back_to_embedded_offline(tmp_path):
    splits, used = load_dataset("mnist", "auto", tmp_path / "empty")
    assert used == "embedded"
    x, y = splits["all"]
    assert x.shape == (5000, 1, 28, 28)
    assert torch.bincount(y).tolist() == [500] * 10


def test_no_source_says_what_was_tried_and_how_to_fix(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("cifar10", "auto", tmp_path)
    msg = str(err.value)
    assert "folder" in msg and "download" in msg and "cifar-10-python.tar.gz" in msg
    assert not any(tmp_path.iterdir())  # nothing half-written left behind


def test_missing_folder_for_explicit_folder_source(tmp_path):
    with pytest.raises(DataNotFoundError, match="nothing under"):
        load_dataset("mnist", "folder", tmp_path / "nope")


def test_embedded_split_is_stratified_disjoint_and_seeded(tmp_path):
    dm = ImageDataModule(source="embedded", root=str(tmp_path), seed=3)
    dm.setup("fit")
    sizes = (len(dm.train_set), len(dm.val_set), len(dm.test_set))
    assert sizes == (4000, 500, 500)
    assert torch.bincount(dm.test_set.labels).tolist() == [50] * 10
    flat = lambda s: {bytes(img.numpy()) for img in s.images}  # noqa: E731
    assert not flat(dm.train_set) & flat(dm.test_set)
    again = ImageDataModule(source="embedded", root=str(tmp_path), seed=3)
    again.setup("fit")
    assert torch.equal(again.test_set.images, dm.test_set.images)


def test_full_dataset_keeps_official_test_set(tmp_path):
    write_tiny_idx(tmp_path, n_train=100, n_test=30)
    dm = ImageDataModule(source="folder", root=str(tmp_path), batch_size=16, augment=False)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (90, 10, 30)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 1, 28, 28) and x.dtype == torch.float32
    expected = (y.float() / 255 - 0.1307) / 0.3081  # normalised with MNIST's mean and std
    torch.testing.assert_close(x[:, 0, 0, 0], expected)


def test_augmentation_is_seeded_by_epoch_and_sample_only(tmp_path):
    """Sample i of an epoch is augmented the same way whatever ran before (a resumed run, another worker)."""
    from tasks.data.reproducible import seed_epoch

    dm = ImageDataModule(source="embedded", root=str(tmp_path))
    dm.setup("fit")
    seed_epoch(3)
    a = dm.train_set[0][0]
    torch.rand(100)  # other draws in between change nothing
    b = dm.train_set[0][0]
    seed_epoch(4)
    c = dm.train_set[0][0]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_random_erasing_blanks_a_rectangle_only_while_training(tmp_path):
    dm = ImageDataModule(dataset="mnist", source="embedded", root=str(tmp_path), augment=False, random_erasing=1.0)
    dm.setup("fit")
    seed_epoch(0)  # the transform of sample 0 is seeded from the epoch
    erased = dm.train_set[0][0]
    plain = (dm.train_set.images[0].float() / 255 - 0.1307) / 0.3081
    changed = ((erased - plain).abs() > 1e-4)[0]
    rows, cols = changed.any(1).nonzero(), changed.any(0).nonzero()
    box = changed[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    assert box.all(), "the erased pixels form one filled rectangle"
    # Zhong et al.'s area range, 2-40%, plus what rounding the sides adds: (h + 1/2)(w + 1/2) <= area + 28.25
    assert 0.02 * 784 - 28.25 <= box.numel() <= 0.4 * 784 + 28.25
    torch.testing.assert_close(dm.val_set[0][0], (dm.val_set.images[0].float() / 255 - 0.1307) / 0.3081)


def test_random_erasing_is_a_probability():
    with pytest.raises(ValueError, match=r"random_erasing=1.5 .*\[0, 1\]"):
        ImageDataModule(random_erasing=1.5)


def test_bad_dataset_name():
    with pytest.raises(ValueError, match="cifar10"):
        ImageDataModule(dataset="svhn")
