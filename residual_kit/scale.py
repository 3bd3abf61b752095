"""Branch scaling: y = x + s * f(x), with s constant, learnable, zero-initialised or per channel."""

from __future__ import annotations

import torch
from torch import nn

from .layout import DataFormat, broadcast_channels, check_data_format
from .registry import Registry


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


def _layerscale(dim: int | None, data_format: DataFormat) -> nn.Module:
    if dim is None:
        raise ValueError("scale='layerscale' needs the branch width: pass dim= (and out_dim= if it differs)")
    return LayerScale(dim, data_format=data_format)


SCALES: Registry = Registry(
    "scale",
    {
        "learnable": lambda dim, data_format: LearnableScale(),
        "rezero": lambda dim, data_format: ReZero(),
        "layerscale": _layerscale,
    },
)
"""Branch scales by name: builder(branch width or None, data_format) -> module."""
