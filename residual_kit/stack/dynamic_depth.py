"""Designs whose layer input is a learned, input-dependent combination of earlier layers' outputs.

DynamicDense        MUDDFormer's dynamic dense connection (Xiao et al. 2025), for the residual stream
AttentionResiduals  softmax attention over earlier sub-layers' outputs, or over blocks of them (Attention
                    Residuals, Kimi Team 2026)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .protocol import Traced, branch_only, first, layer_ends, sublayers


class DynamicDense(Traced, nn.Module):
    """MUDDFormer's dynamic dense connection (Xiao et al. 2025, Eq. 4-5), for the residual stream (the paper's
    ablation "R" way; its headline result is four-way, with queries, keys and values of their own): after layer i,
    x_i' = sum_j A_ij(X_i) X_j over the embeddings X_0 and the layers' outputs X_1..X_(i+1), with per-position
    weights A_i(X) = a_i + GELU(RMSNorm(X) W1_i) W2_i. The static a_i starts one-hot on the newest output and W2_i
    at zero, so the design starts as the plain stack. (MUDDFormer also gives the queries, keys and values of the
    next attention their own combinations; here one combination feeds the whole next layer.)

    Args:
        layers: the layers, each with its own residual connection.
        dim: width D.
    """

    connects = True  # its weights connect layers: no weight decay, init kept (residual_kit.optim)

    def __init__(self, layers: Sequence[nn.Module], dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        n = len(layers)
        self.static = nn.ParameterList([nn.Parameter(F.one_hot(torch.tensor(i + 1), i + 2).float()) for i in range(n)])
        self.norms = nn.ModuleList([nn.RMSNorm(dim) for _ in range(n)])
        self.w1 = nn.ModuleList([nn.Linear(dim, i + 2, bias=False) for i in range(n)])
        self.w2 = nn.ModuleList([nn.Linear(i + 2, i + 2, bias=False) for i in range(n)])
        for w2 in self.w2:
            nn.init.zeros_(w2.weight)

    def forward(self, x: torch.Tensor, **kwargs: object) -> torch.Tensor:
        outputs = [x]  # X_0
        for i, layer in enumerate(self.layers):
            out = first(layer(x, **kwargs))
            outputs.append(out)
            weights = self.static[i] + self.w2[i](F.gelu(self.w1[i](self.norms[i](out))))  # (..., i + 2)
            x = torch.einsum("...j,j...d->...d", weights, torch.stack(outputs))
            self.trace(x)
        return x


class AttentionResiduals(Traced, nn.Module):
    """Attention Residuals (Kimi Team 2026): sub-layer l reads h_l = sum_i softmax_i(w_l . RMSNorm(v_i)) v_i over
    sources v_i, and the stack's output is one more such read. Full form (`blocks=None`): v_0 is the embeddings and
    v_i the branch output of each earlier sub-layer. Block form (the paper's Block AttnRes, its headline result):
    the sub-layers are cut into `blocks` blocks, the sources are the embeddings, the sum of each finished block's
    branch outputs and the partial sum of the current block. The pseudo-queries w_l start at zero, so every read
    starts as the plain average of its sources. The design replaces each sub-layer's addition, so it runs their
    `Residual.branch`.

    Args:
        layers: the layers, each a `Residual` or a module of `Residual` sub-layers.
        dim: width D.
        blocks: None for the full form, else the number of blocks N (the paper uses about 8; as many blocks as
            sub-layers or more is the full form).
    """

    connects = True  # its weights connect layers: no weight decay, init kept (residual_kit.optim)

    design = "attnres"

    def __init__(self, layers: Sequence[nn.Module], dim: int, blocks: int | None = None) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.sublayers = branch_only([s for layer in self.layers for s in sublayers(layer)], self.design)
        n = len(self.sublayers)
        if blocks is not None and blocks < 1:
            raise ValueError(f"blocks={blocks} must be at least 1")
        self.blocks, self.size = blocks, 1 if blocks is None else math.ceil(n / min(blocks, n))
        self.queries = nn.Parameter(torch.zeros(n + 1, dim))  # w_l, the last for the output
        self.ends = layer_ends(self.layers)
        self.norm = nn.RMSNorm(dim, elementwise_affine=False)

    def read(self, l: int, values: list[torch.Tensor], keys: list[torch.Tensor]) -> torch.Tensor:  # noqa: E741
        logits = torch.stack(keys) @ self.queries[l]  # (i, ...)
        return torch.einsum("i...,i...d->...d", logits.softmax(dim=0), torch.stack(values))

    def forward(self, x: torch.Tensor, **kwargs: object) -> torch.Tensor:
        values, keys = [x], [self.norm(x)]  # finished sources and their keys
        current = None  # the partial sum of the current block
        h = self.read(0, values, keys)
        for l, sublayer in enumerate(self.sublayers):  # noqa: E741
            out, _ = sublayer.branch(h, **kwargs)
            current = out if current is None else current + out
            if (l + 1) % self.size == 0:
                values, keys, current = [*values, current], [*keys, self.norm(current)], None
            partial = [] if current is None else [current]
            h = self.read(l + 1, values + partial, keys + [self.norm(p) for p in partial])  # the next read
            if l in self.ends:
                self.trace(h)
        return h

    def extra_repr(self) -> str:
        return "full" if self.blocks is None else f"blocks={self.blocks} of {self.size} sub-layers"


__all__ = ["AttentionResiduals", "DynamicDense"]
