"""Branch scaling: y = x + s * f(x), with s constant, learnable, zero-initialised or per channel."""

from __future__ import annotations

import torch
from torch import nn

from .layout import DataFormat, broadcast_channels, check_data_format
from .registry import Registry
from .slot import Slot


class Scale(nn.Module):
    """Multiply by a fixed constant (e.g. 1/sqrt(2), or DeepNet's branch weighting)."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = float(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.value

    def formula(self, fx: str) -> str:
        return f"{self.value:g}·{fx}"

    def extra_repr(self) -> str:
        return f"value={self.value}"


class LearnableScale(nn.Module):
    """One learnable scalar, initialised to `init`."""

    scalars = ("weight",)  # see residual_kit.optim

    def __init__(self, init: float = 1.0) -> None:
        super().__init__()
        self.init = float(init)
        self.weight = nn.Parameter(torch.empty(()))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.constant_(self.weight, self.init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight

    def formula(self, fx: str) -> str:
        return f"α·{fx}"

    def extra_repr(self) -> str:
        return f"init={self.init}"


class ReZero(LearnableScale):
    """ReZero (Bachlechner et al. 2020): a scalar initialised to 0, so the block starts as the identity."""

    def __init__(self) -> None:
        super().__init__(init=0.0)

    def formula(self, fx: str) -> str:
        return f"rezero·{fx}"

    def extra_repr(self) -> str:
        return ""


class LayerScale(nn.Module):
    """LayerScale (Touvron et al. 2021, CaiT): a per-channel vector initialised small.

    Args:
        dim: number of channels of the branch output.
        init: initial value of every channel's scale.
        data_format: where the channels are, "channels_last" (B, T, D) or "channels_first" (B, C, H, W).
    """

    def __init__(self, dim: int, init: float = 1e-5, data_format: DataFormat = "channels_last") -> None:
        super().__init__()
        self.dim, self.init = dim, float(init)
        self.data_format = check_data_format(data_format)
        self.gamma = nn.Parameter(torch.empty(dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.constant_(self.gamma, self.init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * broadcast_channels(self.gamma, x, self.data_format)

    def formula(self, fx: str) -> str:
        return f"γ⊙{fx}"

    def extra_repr(self) -> str:
        return f"dim={self.dim}, init={self.init}, data_format={self.data_format}"


def layerscale_init(depth: int | None) -> float:
    """CaiT's ε by depth (Touvron et al. 2021, §2.1): 0.1 up to 18 layers, 1e-5 up to 24, 1e-6 beyond;
    1e-5 (timm's default) when the depth is unknown."""
    if depth is None:
        return 1e-5
    return 0.1 if depth <= 18 else 1e-5 if depth <= 24 else 1e-6


def _layerscale(slot: Slot) -> nn.Module:
    if slot.branch_dim is None:
        raise ValueError("scale='layerscale' needs the branch width: pass dim= (and out_dim= if it differs)")
    return LayerScale(slot.branch_dim, layerscale_init(slot.depth), slot.data_format)


def _completep(slot: Slot) -> nn.Module:
    if slot.depth is None:
        raise ValueError("scale='completep' multiplies each branch by 1/L: pass depth= (the layers of the stack)")
    return Scale(1 / slot.depth)


SCALES: Registry = Registry(
    "scale",
    {
        "learnable": lambda slot: LearnableScale(),
        "rezero": lambda slot: ReZero(),
        "layerscale": _layerscale,
        "completep": _completep,  # CompleteP (Dey et al. 2025, 2505.01618): h + L^-1 f(h), its alpha = 1
    },
)
"""Branch scales by name: builder(slot) -> module; `slot.branch_dim` is the width of f(x)."""
