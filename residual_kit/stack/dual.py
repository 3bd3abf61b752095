"""ResiDual (Xie et al. 2023): a post-norm and a pre-norm residual stream in one model."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .protocol import Traced, branch_only, layer_ends, sublayers


class ResiDual(Traced, nn.Module):
    """Two streams over the same branches f_k: x_(k+1) = LN(x_k + f_k(x_k)) (post-norm) and
    d_(k+1) = d_k + f_k(x_k) (the pre-norm stream, d_0 = x_0); the output is x_L + LN(d_L). Post-norm keeps the
    deep layers' share of the representation, the dual stream keeps pre-norm's gradient path (the paper's Eq. 4-6).

    Args:
        layers: the layers, each a `Residual` or a module of `Residual` sub-layers; the design owns every norm, so
            their placement must be None (their branch is f itself) and their merge-side options plain.
        dim: width D.
    """

    design = "resi_dual"
    sublayer_options = {"placement": None}  # what a model must set for this design (see `STACKS`)

    def __init__(self, layers: Sequence[nn.Module], dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.sublayers = branch_only([s for layer in self.layers for s in sublayers(layer)], self.design)
        placed = [s.placement for s in self.sublayers if s.placement is not None]
        if placed:
            raise ValueError(
                f"stack='resi_dual' puts its own norms in: its sub-layers take placement=None, not {placed[0]!r}"
            )
        self.ends = layer_ends(self.layers)
        self.post_norms = nn.ModuleList([nn.LayerNorm(dim) for _ in self.sublayers])
        self.dual_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, **kwargs: object) -> torch.Tensor:
        dual = x
        for k, (sublayer, norm) in enumerate(zip(self.sublayers, self.post_norms, strict=True)):
            out, _ = sublayer.branch(x, **kwargs)  # f_k(x_k)
            x, dual = norm(x + out), dual + out
            if k in self.ends:
                self.trace(x)
        return x + self.dual_norm(dual)


__all__ = ["ResiDual"]
