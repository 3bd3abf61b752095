"""Norm layers given as a string, a class, a factory or an instance, resolved in one small map."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Union

import torch
from torch import nn

from .layout import DataFormat, broadcast_channels, check_data_format
from .registry import Registry
from .slot import Slot

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


class DynamicTanh(nn.Module):
    """DyT (Zhu et al. 2025, "Transformers without Normalization"): γ ⊙ tanh(α x) + β in place of a norm.

    α is one learnable scalar (the paper's α₀ = 0.5 outside LLMs), γ and β per channel from 1 and 0.

    Args:
        dim: channels.
        alpha: α at initialisation.
        data_format: where the channels are.
    """

    scalars = ("alpha",)  # see residual_kit.optim

    def __init__(self, dim: int, alpha: float = 0.5, data_format: DataFormat = "channels_last") -> None:
        super().__init__()
        self.dim, self.init_alpha, self.data_format = dim, float(alpha), check_data_format(data_format)
        self.alpha = nn.Parameter(torch.empty(()))
        self.weight, self.bias = nn.Parameter(torch.empty(dim)), nn.Parameter(torch.empty(dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.constant_(self.alpha, self.init_alpha)
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = (broadcast_channels(p, x, self.data_format) for p in (self.weight, self.bias))
        return torch.tanh(self.alpha * x) * weight + bias

    def extra_repr(self) -> str:
        return f"dim={self.dim}, alpha={self.init_alpha}, data_format={self.data_format}"


class DynamicErf(DynamicTanh):
    """Derf (Chen et al. 2025, "Stronger Normalization-Free Transformers", 2512.10938): γ ⊙ erf(α x + s) + β in
    place of a norm; α (from 0.5) and the shift s (from 0) learnable scalars, γ and β per channel from 1 and 0, as
    the paper's reference code starts them."""

    scalars = ("alpha", "shift")

    def __init__(self, dim: int, alpha: float = 0.5, data_format: DataFormat = "channels_last") -> None:
        super().__init__(dim, alpha, data_format)
        self.shift = nn.Parameter(torch.zeros(()))

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if hasattr(self, "shift"):
            nn.init.zeros_(self.shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = (broadcast_channels(p, x, self.data_format) for p in (self.weight, self.bias))
        return torch.erf(self.alpha * x + self.shift) * weight + bias


class DepthScaledNorm(nn.Module):
    """norm(x) * factor: LayerNorm Scaling's 1/sqrt(l) on the pre-norm of layer l (see `ResidualOptions`).

    Args:
        spec: the norm, as `make_norm` takes it.
        factor: the scale of its output.
        dim: channels.
        data_format: where the channels are.
    """

    def __init__(self, spec: NormSpec, factor: float, dim: int, data_format: DataFormat = "channels_last") -> None:
        super().__init__()
        self.norm, self.factor = make_norm(spec, dim, data_format), factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor:.4g}"


def _last_axis(make: Callable[[int], nn.Module]) -> Callable[[Slot], nn.Module]:
    def build(slot: Slot) -> nn.Module:
        norm = make(slot.dim)
        return norm if slot.data_format == "channels_last" else MoveAxis(norm, 1, -1)

    return build


def _batch(slot: Slot) -> nn.Module:
    if slot.data_format == "channels_first":
        return nn.BatchNorm2d(slot.dim)
    return MoveAxis(nn.BatchNorm1d(slot.dim), -1, 1)  # (B, T, D) -> (B, D, T)


def _group(slot: Slot) -> nn.Module:
    groups = next(g for g in (32, 16, 8, 4, 2, 1) if slot.dim % g == 0)
    norm = nn.GroupNorm(groups, slot.dim)
    return norm if slot.data_format == "channels_first" else MoveAxis(norm, -1, 1)


NORMS: Registry[Callable[[Slot], nn.Module]] = Registry(
    "norm",
    {
        "layer": _last_axis(nn.LayerNorm),
        "rms": _last_axis(nn.RMSNorm),
        "batch": _batch,
        "group": _group,
        "dyt": lambda slot: DynamicTanh(slot.dim, data_format=slot.data_format),
        "derf": lambda slot: DynamicErf(slot.dim, data_format=slot.data_format),
    },
)
"""Norms by name: builder(slot) -> a module over the feature axis of width `slot.dim`."""


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
        return build(Slot(dim, data_format=data_format))
    if callable(spec):
        if dim is None:
            raise ValueError("a norm class or factory needs the feature width: pass dim=<channels>")
        return spec(dim)
    raise TypeError(f"norm must be a string, class, factory, module or None, got {type(spec).__name__}")


__all__ = ["NORMS", "DepthScaledNorm", "DynamicErf", "DynamicTanh", "MoveAxis", "NormSpec", "make_norm"]
