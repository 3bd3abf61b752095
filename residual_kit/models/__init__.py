"""Model registry: every architecture built from `Residual`, by name (timm's `create_model` / `list_models`)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from typing import Any

from torch import nn

from .gan import DISCRIMINATORS, GENERATORS, GANConfig
from .gpt import GPT, GPTConfig
from .lstm import LSTMReader, LSTMReaderConfig, LSTMStack
from .resnet import RESNETS, ResNet, ResNetConfig, cifar_resnet, imagenet_resnet

MODELS: dict[str, Callable[..., nn.Module]] = {
    **RESNETS,
    "gpt": lambda **kw: GPT(GPTConfig(**kw)),
    "lstm_stack": LSTMStack,
    "lstm_reader": lambda **kw: LSTMReader(LSTMReaderConfig(**kw)),
    **{f"{arch}_generator": g for arch, g in GENERATORS.items()},
    **{f"{arch}_discriminator": d for arch, d in DISCRIMINATORS.items()},
}


def _natural(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style pattern, e.g. `list_models("resnet*")`, in natural order."""
    return sorted(fnmatch.filter(MODELS, pattern), key=_natural)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model, e.g. `create_model("resnet20", in_channels=1, residual=False)`."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {list_models()}")
    return MODELS[name](**kwargs)


__all__ = [
    "GPT",
    "MODELS",
    "GANConfig",
    "GPTConfig",
    "LSTMReader",
    "LSTMReaderConfig",
    "LSTMStack",
    "ResNet",
    "ResNetConfig",
    "cifar_resnet",
    "create_model",
    "imagenet_resnet",
    "list_models",
]
