"""Frac-connections (Zhu et al. 2025): hyper-connections' learned width and depth connections between m fractions
of the hidden state, where hyper-connections keep n full-width copies of it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .protocol import Traced, branch_only, layer_ends, sublayers


class FracConnections(Traced, nn.Module):
    """The stream h (..., D) split into m fractions F (..., m, D/m); sub-layer k reads the fractions
    mixed by Γ_k, concatenated, and writes F' = β_k ⊙ T_k(Γ_k^T F) + A_k^T F (fraction j of the output into
    fraction j). Static: learned Γ, A (m x m) and β (m); dynamic: each also gets s * tanh(norm(F) W), W from zero,
    as in hyper-connections. Γ = A = I and β = 1 at init: the plain stack, whatever m.

    Args:
        layers: the layers, each a `Residual` or a module of `Residual` sub-layers (their merge options refused).
        dim: width D, divisible by `fractions`.
        fractions: m (the paper's frac-rate 1/m).
        dynamic: the input-dependent form.
    """

    scalars = ("s_alpha", "s_beta")

    connects = True  # its weights connect layers: no weight decay, init kept (residual_kit.optim)

    design = "frac"

    def __init__(self, layers: Sequence[nn.Module], dim: int, fractions: int = 2, dynamic: bool = True) -> None:
        super().__init__()
        if fractions < 1 or dim % fractions:
            raise ValueError(f"fractions={fractions} must divide the width {dim}")
        self.layers = nn.ModuleList(layers)
        self.sublayers = branch_only([s for layer in self.layers for s in sublayers(layer)], self.design)
        self.ends = layer_ends(self.layers)
        m, depth = fractions, len(self.sublayers)
        self.fractions, self.dynamic = m, dynamic
        self.width = nn.Parameter(torch.eye(m).repeat(1, 2).repeat(depth, 1, 1))  # [Γ A] per sub-layer (L, m, 2m)
        self.write = nn.Parameter(torch.ones(depth, m))  # β
        if dynamic:
            self.norms = nn.ModuleList([nn.LayerNorm(dim // m) for _ in range(depth)])
            self.w_dynamic = nn.Parameter(torch.zeros(depth, 2 * m + 1, dim // m))
            self.s_alpha = nn.Parameter(torch.full((depth,), 0.01))
            self.s_beta = nn.Parameter(torch.full((depth,), 0.01))

    def connections(self, k: int, fractions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[Γ A] (m, 2m) or (..., m, 2m) and β (m) or (..., m) of sub-layer k for fractions F (..., m, D/m)."""
        width, write = self.width[k], self.write[k]
        if not self.dynamic:
            return width, write
        d = torch.tanh(F.linear(self.norms[k](fractions), self.w_dynamic[k]))  # (..., m, 2m + 1)
        return torch.addcmul(width, self.s_alpha[k], d[..., :-1]), torch.addcmul(write, self.s_beta[k], d[..., -1])

    def forward(self, x: torch.Tensor, **kwargs: object) -> torch.Tensor:
        m = self.fractions
        fractions = x.unflatten(-1, (m, -1))  # (..., m, D/m)
        for k, sublayer in enumerate(self.sublayers):
            width, write = self.connections(k, fractions)
            spec = "jm,...jd->...md" if width.dim() == 2 else "...jm,...jd->...md"
            read, mixed = torch.einsum(spec, width, fractions).split([m, m], dim=-2)  # Γ^T F and A^T F
            out, _ = sublayer.branch(read.flatten(-2), **kwargs)  # T_k (..., D)
            fractions = torch.addcmul(mixed, write.unsqueeze(-1), out.unflatten(-1, (m, -1)))
            if k in self.ends:
                self.trace(fractions)
        return fractions.flatten(-2)

    def extra_repr(self) -> str:
        return f"fractions={self.fractions}, dynamic={self.dynamic}, sublayers={len(self.sublayers)}"


__all__ = ["FracConnections"]
