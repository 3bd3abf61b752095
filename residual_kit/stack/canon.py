"""Canon layers (Allen-Zhu 2025, "Physics of Language Models: Part 4.1"): h + a causal depthwise convolution of
width 4 over the sequence, before each attention and MLP (the paper's Canon-A and Canon-C)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..residual import Residual
from .protocol import PlainStack, sublayers


class Canon(nn.Module):
    """h_t + sum_(i<width) w_i ⊙ h_(t-i): each position mixes in its own recent past, per channel, over (..., T, D)
    sequences.

    Args:
        dim: channels D.
        width: the positions read, the current one included (the paper uses 4).
    """

    def __init__(self, dim: int, width: int = 4) -> None:
        super().__init__()
        self.width = width
        self.conv = nn.Conv1d(dim, dim, width, groups=dim, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.dim() != 3:
            raise ValueError(f"Canon mixes positions of (B, T, D) sequences, got a tensor of shape {tuple(h.shape)}")
        past = F.pad(h.transpose(1, 2), (self.width - 1, 0))  # (B, D, width - 1 + T): causal
        return h + self.conv(past).transpose(1, 2)


class CanonLayers(PlainStack):
    """The plain stack with a `Canon` layer after each sub-layer's pre-norm, in front of its f (attention, MLP or
    recurrent layer): y = x + f(Canon(norm(x))). Canon's weights start as torch's `Conv1d` does.

    Args:
        layers: the layers, each a `Residual` or a module of `Residual` sub-layers.
        dim: width D.
        width: Canon's width.
    """

    def __init__(self, layers: Sequence[nn.Module], dim: int, width: int = 4) -> None:
        super().__init__([self.put_in(layer, dim, width) for layer in layers])

    @staticmethod
    def put_in(layer: nn.Module, dim: int, width: int) -> nn.Module:
        """The layer with Canon after each sub-layer's pre-norm; a bare module f (no `Residual` in it) as f(Canon)."""
        if not isinstance(layer, Residual) and not any(isinstance(m, Residual) for m in layer.children()):
            return nn.Sequential(Canon(dim, width), layer)
        for sublayer in sublayers(layer):
            sublayer.pre_norm = nn.Sequential(sublayer.pre_norm, Canon(dim, width))
        return layer


__all__ = ["Canon", "CanonLayers"]
