"""The frozen digit classifier behind "recognisable", label accuracy and digit-FID: the digit ResNet-20 that ships
with residual-kit (`create_model("resnet20", pretrained="digits")`), so that every machine scores the same
generator's digits the same (FID is comparable across papers because its Inception network is fixed; so is this
judge), or a classifier of one's own from a file.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from residual_kit.models import ResNet, ResNetConfig, create_model
from tasks.data.sources import DATASETS

MEAN, STD = DATASETS["mnist"].mean[0], DATASETS["mnist"].std[0]


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


def load_digit_classifier(path: str | Path | None = None) -> ResNet:
    """The shipped digit ResNet-20 (SHA-256 checked), or a `tasks.resnet` checkpoint (.ckpt) or state dict (.pt)."""
    from tasks.resnet import ImageClassifier

    if path is None:
        return create_model("resnet20", pretrained="digits")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"digit classifier {path} does not exist: pass a checkpoint of `python -m tasks.resnet fit` "
            "(<run>/checkpoints/*.ckpt), or leave classifier_path unset for the shipped one"
        )
    if path.suffix == ".ckpt":
        return ImageClassifier.load_from_checkpoint(path, map_location="cpu").net
    net = ResNetConfig("resnet20", num_classes=10, in_channels=1).build()
    try:
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as err:
        raise ValueError(f"digit classifier {path} cannot be read ({err}): pass a state dict of a ResNet-20") from err
    return net


__all__ = ["MEAN", "STD", "DigitClassifier", "load_digit_classifier"]
