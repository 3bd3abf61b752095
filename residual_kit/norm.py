"""Norm layers given as a string, a class, a factory or an instance, resolved in one small map."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Union

import torch
from torch import nn

from .layout import DataFormat
from .registry import Registry

NormSpec = Union[str, nn.Module, Callable[[int], nn.Module], None]


class MoveAxis(nn.Module):
    """Run `module` with axis `source` moved to `dest`, then move it back.

    Lets a last-axis norm (LayerNorm, RMSNorm) normalise the channels of (B, C, H, W) features,
    and a channel-axis norm (BatchNorm1d) normalise the features of (B, T, D) sequences.
    """

    def __init__(self, module: nn.Module, source: int, dest: int) -> None:
        super().__init__()
        self.module = module
        self.source, self.dest = source, dest

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.movedim(self.source, self.dest)).movedim(self.dest, self.source)

    def extra_repr(self) -> str:
        return f"source={self.source}, dest={self.dest}"


def _last_axis(make: Callable[[int], nn.Module]) -> Callable[[int, DataFormat], nn.Module]:
    def build(dim: int, data_format: DataFormat) -> nn.Module:
        norm = make(dim)
        return norm if data_format == "channels_last" else MoveAxis(norm, 1, -1)

    return build


def _batch(dim: int, data_format: DataFormat) -> nn.Module:
    if data_format == "channels_first":
        return nn.BatchNorm2d(dim)
    return MoveAxis(nn.BatchNorm1d(dim), -1, 1)  # (B, T, D) -> (B, D, T)


def _group(dim: int, data_format: DataFormat) -> nn.Module:
    groups = next(g for g in (32, 16, 8, 4, 2, 1) if dim % g == 0)
    norm = nn.GroupNorm(groups, dim)
    return norm if data_format == "channels_first" else MoveAxis(norm, -1, 1)


NORMS: Registry = Registry(
    "norm",
    {"layer": _last_axis(nn.LayerNorm), "rms": _last_axis(nn.RMSNorm), "batch": _batch, "group": _group},
)
"""Norms by name: builder(width, data_format) -> module over the feature axis."""


def make_norm(spec: NormSpec, dim: int | None, data_format: DataFormat = "channels_last") -> nn.Module:
    """Build a norm over the feature axis of width `dim`.

    `spec` is a name from `NORMS`, a class or factory called as `spec(dim)` (e.g. `nn.BatchNorm2d`,
    `partial(nn.GroupNorm, 8)`), or a module instance, which is deep-copied so that two slots never
    share weights. `None` gives `nn.Identity()`.
    """
    if spec is None:
        return nn.Identity()
    if isinstance(spec, nn.Module):
        return copy.deepcopy(spec)
    if isinstance(spec, str):
        build = NORMS.get_builder(spec)
        if dim is None:
            raise ValueError(f"norm={spec!r} needs the feature width: pass dim=<channels>")
        return build(dim, data_format)
    if callable(spec):
        if dim is None:
            raise ValueError("a norm class or factory needs the feature width: pass dim=<channels>")
        return spec(dim)
    raise TypeError(f"norm must be a string, class, factory, module or None, got {type(spec).__name__}")
