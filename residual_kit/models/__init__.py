"""Model registry: every architecture built from `Residual`, by name (timm's `create_model` / `list_models`).

Each family has one config dataclass whose `build()` makes the network, and each registered name is a config
with some fields fixed: `create_model("resnet56", in_channels=1)` is `ResNetConfig(arch="resnet56",
in_channels=1).build()`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..registry import Registry
from .gan import GAN_ARCHS, GANConfig
from .gpt import GPT, GPTConfig
from .lstm import LSTMConfig, LSTMReader, LSTMReaderConfig, LSTMStack, RecurrentLM, RecurrentLMConfig
from .options import ResidualOptions
from .resnet import RESNETS, ResNet, ResNetConfig


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its family's config class, the fields its name fixes, and which part of the built
    object it is (the generator of a GAN)."""

    config: type
    fixed: dict[str, Any] = field(default_factory=dict)
    part: Callable[[Any], nn.Module] = lambda built: built
    build_args: tuple[str, ...] = ()  # keyword arguments of `build` rather than of the config

    def __call__(self, **kwargs: Any) -> nn.Module:
        taken = {k: kwargs.pop(k) for k in self.build_args if k in kwargs}
        return self.part(self.config(**{**kwargs, **self.fixed}).build(**taken))


def _gan_part(arch: str, part: str) -> ModelEntry:
    """G or D of a GAN; what they are conditioned on is `GANConfig.build`'s (conditions=, projection=)."""
    return ModelEntry(GANConfig, {"arch": arch}, lambda gan: getattr(gan, part), ("conditions", "projection"))


MODELS: Registry[ModelEntry] = Registry(
    "model",
    {
        **{name: ModelEntry(ResNetConfig, {"arch": name}) for name in RESNETS},
        "gpt": ModelEntry(GPTConfig),
        "lstm_stack": ModelEntry(LSTMConfig),
        "lstm_reader": ModelEntry(LSTMReaderConfig),
        "recurrent_lm": ModelEntry(RecurrentLMConfig),
        **{f"{arch}_{part}": _gan_part(arch, part) for arch in GAN_ARCHS for part in ("generator", "discriminator")},
    },
    home="residual_kit.models.MODELS",
)
"""Models by name; `MODELS.register(name, ModelEntry(MyConfig))` adds one."""


def _natural(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style pattern, e.g. `list_models("resnet*")`, in natural order."""
    return sorted(fnmatch.filter(MODELS, pattern), key=_natural)


def create_model(
    name: str, checkpoint: str | Path | None = None, pretrained: str | None = None, **kwargs: Any
) -> nn.Module:
    """Build a registered model, e.g. `create_model("resnet20", in_channels=1, residual=False)`.

    With `checkpoint` (a `.ckpt` written by a task's `fit`), the network is built with the options it was trained
    with (`kwargs` override them) and its weights are loaded; with `pretrained`, the weights of that name that ship
    with the package (`residual_kit.pretrained.PRETRAINED`, e.g. "digits"), SHA-256 checked, offline.
    """
    if checkpoint is not None and pretrained is not None:
        raise ValueError("give checkpoint= or pretrained=, not both")
    if pretrained is not None:
        from ..pretrained import load_pretrained

        return load_pretrained(name, pretrained, **kwargs)
    if checkpoint is None:
        return MODELS.get_builder(name)(**kwargs)
    from .checkpoint import load_network

    return load_network(name, checkpoint, **kwargs)


__all__ = [
    "GPT",
    "MODELS",
    "GANConfig",
    "GPTConfig",
    "LSTMConfig",
    "LSTMReader",
    "LSTMReaderConfig",
    "LSTMStack",
    "ModelEntry",
    "RecurrentLM",
    "RecurrentLMConfig",
    "ResNet",
    "ResNetConfig",
    "ResidualOptions",
    "create_model",
    "list_models",
]
