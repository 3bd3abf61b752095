"""The frozen digit classifier behind digit-FID: loaded from a file, or trained once and cached.

Training it takes 6 epochs of ResNet-20 on the digits, from its own seed, so that every machine and every task
seed scores digits with the same classifier; it shows a progress bar, the weights are cached under
`$XDG_CACHE_HOME/residual_kit/` (`~/.cache` when unset) and every later run loads them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import RichProgressBar
from pytorch_lightning.utilities import rank_zero_info
from torch import nn

from residual_kit.models import ResNet, ResNetConfig
from tasks.core.outputs import atomic_write
from tasks.data.reproducible import fixed_randomness
from tasks.data.sources import DATASETS, Source

MEAN, STD = DATASETS["mnist"].mean[0], DATASETS["mnist"].std[0]
CLASSIFIER_FILE = "digit_classifier_resnet20.pt"


def cache_dir() -> Path:
    """`$XDG_CACHE_HOME/residual_kit`, or `~/.cache/residual_kit` (the XDG default)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "residual_kit"


class DigitClassifier(nn.Module):
    """A frozen digit ResNet: images in [0, 1] -> pooled penultimate features (digit-FID) or logits.

    It stays in eval mode whatever `train()` is called with: a classifier whose BN statistics moved would
    change the metric it computes.
    """

    def __init__(self, classifier: ResNet) -> None:
        super().__init__()
        self.net = classifier
        self.num_features = classifier.num_features
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> DigitClassifier:
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) in [0, 1] -> (B, num_features)."""
        return self.net.forward_head(self.net.forward_features((images.float() - MEAN) / STD), pre_logits=True)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (B, 10) from features this classifier computed."""
        return self.net.head[-1](features)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify(self(images))  # (B, 10)


def load_digit_classifier(path: str | Path | None = None, source: Source | None = None, root: str = "data") -> ResNet:
    """A `tasks.resnet` checkpoint (.ckpt) or a state dict (.pt); with no path, the cached one, else train it."""
    from tasks.resnet import ImageClassifier

    if path is None:
        cached = cache_dir() / CLASSIFIER_FILE
        return load_digit_classifier(cached) if cached.is_file() else train_digit_classifier(cached, source, root)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"digit classifier {path} does not exist: pass a checkpoint of `python -m tasks.resnet fit` "
            "(<run>/checkpoints/*.ckpt), or leave classifier_path unset to train one once and cache it"
        )
    if path.suffix == ".ckpt":
        return ImageClassifier.load_from_checkpoint(path, map_location="cpu").net
    net = ResNetConfig("resnet20", num_classes=10, in_channels=1).build()
    try:
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as err:
        raise ValueError(f"digit classifier {path} cannot be read ({err}); delete it and it is trained again") from err
    return net


CLASSIFIER_SEED = 0


def train_digit_classifier(path: Path, source: Source | None = None, root: str = "data") -> ResNet:
    """Train ResNet-20 on MNIST for 6 epochs, save its weights at `path`, return it."""
    from tasks.data import ImageDataModule
    from tasks.resnet import ImageClassifier

    rank_zero_info(f"digit-FID needs a digit classifier: training ResNet-20 once (6 epochs), cached at {path}")
    # one classifier for every machine and every task seed; its run's files (a confusion matrix) go to a
    # folder that is deleted, not into the user's current directory
    with fixed_randomness(CLASSIFIER_SEED), tempfile.TemporaryDirectory(prefix="digit-classifier-") as scratch:
        model = ImageClassifier(ResNetConfig("resnet20"), lr=0.1, schedule="onecycle")
        data = ImageDataModule("mnist", source=source, root=root)
        trainer = pl.Trainer(
            max_epochs=6, accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
            callbacks=[RichProgressBar(leave=True)], enable_model_summary=False, default_root_dir=scratch,
        )  # fmt: skip
        trainer.fit(model, datamodule=data)
        acc = trainer.test(model, datamodule=data, verbose=False)[0]["test/acc"]
    rank_zero_info(f"digit classifier: {acc:.2%} test accuracy, saved to {path}")
    with atomic_write(path) as tmp:
        torch.save(model.net.state_dict(), tmp)
    return model.net


__all__ = ["MEAN", "STD", "DigitClassifier", "cache_dir", "load_digit_classifier", "train_digit_classifier"]
