"""Stochastic depth (Huang et al. 2016): drop a residual branch per sample while training."""

from __future__ import annotations

import torch
from torch import nn


def drop_path(x: torch.Tensor, p: float = 0.0, training: bool = False, scale_by_keep: bool = True) -> torch.Tensor:
    """Zero whole samples of `x` with probability `p`, rescaled by 1/(1-p) so E[out] = x."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"drop_path probability must be in [0, 1], got {p}")
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)  # (B, 1, ...)
    if keep > 0.0 and scale_by_keep:
        mask = mask / keep
    return x * mask


def drop_path_rates(rate: float, blocks: int) -> list[float]:
    """Per-block drop-path probabilities rising linearly from 0 to `rate` at the last block.

    The linear decay rule of stochastic depth (Huang et al. 2016, Eq. 4), as timm's
    `calculate_drop_path_rates`: the first block is always kept, the deepest is dropped most.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"drop_path rate must be in [0, 1], got {rate}")
    if blocks < 1:
        raise ValueError(f"drop_path_rates needs at least one block, got {blocks}")
    return [rate * i / max(1, blocks - 1) for i in range(blocks)]


class DropPath(nn.Module):
    """Module form of `drop_path`; the identity in eval mode.

    Args:
        p: probability of dropping the branch of a sample, in [0, 1].
        scale_by_keep: divide kept samples by 1-p to keep the expectation.
    """

    def __init__(self, p: float = 0.0, scale_by_keep: bool = True) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"DropPath p must be in [0, 1], got {p}")
        self.p = p
        self.scale_by_keep = scale_by_keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training, self.scale_by_keep)

    def formula(self, fx: str) -> str:
        return f"drop_path({fx}, p={self.p})"

    def extra_repr(self) -> str:
        return f"p={self.p}"
