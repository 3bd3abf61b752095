"""LAuReL (Menghani et al. 2024): the residual's shortcut made a learned linear function, as merges.

    LaurelRW   y = α·b + β·s            learned weights on branch and shortcut, bounded (LAuReL-RW)
    LaurelLR   y = b + s + B A s         a low-rank learned map added to the shortcut (LAuReL-LR)

Both start as y = s + b (α = β = 1; B = 0), so a network built with them starts as its plain residual twin.
The paper's third form (LAuReL-PA) reads earlier layers' activations, a stack-level design, and is not here.
"""

from __future__ import annotations

import torch
from torch import nn

from .layout import DataFormat, feature_axis


class LaurelRW(nn.Module):
    """y = α·b + β·s, α = 2σ(a) and β = 2σ(c) with learned a, c from 0: the paper keeps its two weights bounded
    through a sigmoid, and 2σ(0) = 1 starts the block as s + b."""

    connects, scalars = True, ("weights",)  # see residual_kit.optim

    fresh = True

    def __init__(self) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(2))  # a, c: α = 2σ(a), β = 2σ(c)

    def forward(self, s: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        alpha, beta = 2 * torch.sigmoid(self.weights)
        return alpha * b + beta * s

    def formula(self, sx: str, fx: str) -> str:
        return f"α·{fx} + β·{sx}"


class LaurelLR(nn.Module):
    """y = b + s + B A s, A (r x D) and B (D x r) learned, B from zero.

    Args:
        dim: D, the width of s.
        rank: r.
        data_format: where the channels are.
    """

    connects = True  # A and B connect the shortcut, and B starts at zero (residual_kit.optim)

    fresh = True

    def __init__(self, dim: int, rank: int = 16, data_format: DataFormat = "channels_last") -> None:
        super().__init__()
        self.axis = feature_axis(data_format)
        self.down = nn.Linear(dim, min(rank, dim), bias=False)  # A
        self.up = nn.Linear(min(rank, dim), dim, bias=False)  # B
        nn.init.zeros_(self.up.weight)

    def forward(self, s: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        low_rank = self.up(self.down(s.movedim(self.axis, -1))).movedim(-1, self.axis)
        return b + s + low_rank

    def formula(self, sx: str, fx: str) -> str:
        return f"{fx} + {sx} + BA·{sx}"


__all__ = ["LaurelLR", "LaurelRW"]
