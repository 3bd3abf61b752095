"""Model registry: every architecture built from `Residual`, by name."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from .resnet import ResNet, cifar_resnet, imagenet_resnet

MODELS: dict[str, Callable[..., nn.Module]] = {
    **{f"resnet{d}": partial(cifar_resnet, d) for d in (8, 14, 20, 32, 44, 56, 110)},
    **{f"resnet{d}": partial(imagenet_resnet, d) for d in (18, 34, 50)},
}


def list_models() -> list[str]:
    return sorted(MODELS, key=lambda n: int(n.removeprefix("resnet")))


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model, e.g. `create_model("resnet20", in_channels=1, plain=True)`."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {list_models()}")
    return MODELS[name](**kwargs)


__all__ = ["MODELS", "ResNet", "cifar_resnet", "create_model", "imagenet_resnet", "list_models"]
