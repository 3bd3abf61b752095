"""Designs whose layer input is a learned, input-dependent combination of earlier layers' outputs.

DynamicDense        MUDDFormer's dynamic dense connection (Xiao et al. 2025), for the residual stream
AttentionResiduals  softmax attention over earlier sub-layers' outputs (Attention Residuals, Kimi Team 2026)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .protocol import Traced, branch_only, first, layer_ends, sublayers


class DynamicDense(Traced, nn.Module):
    """MUDDFormer's dynamic dense connection (Xiao et al. 2025, Eq. 4-5), for the residual stream: after layer i,
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
    """Attention Residuals (Kimi Team 2026): sub-layer l reads h_l = sum_(i<l) softmax_i(w_l . RMSNorm(v_i)) v_i,
    with v_0 the embeddings and v_i the branch output of sub-layer i; the stack's output is one more such read.
    The pseudo-queries w_l start at zero, so every read starts as the plain average of what came before. The
    design replaces each sub-layer's addition, so it runs their `Residual.branch` (Full AttnRes, not the paper's
    block form).

    Args:
        layers: the layers, each a `Residual` or a module of `Residual` sub-layers.
        dim: width D.
    """

    connects = True  # its weights connect layers: no weight decay, init kept (residual_kit.optim)

    design = "attnres"

    def __init__(self, layers: Sequence[nn.Module], dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.sublayers = branch_only([s for layer in self.layers for s in sublayers(layer)], self.design)
        self.queries = nn.Parameter(torch.zeros(len(self.sublayers) + 1, dim))  # w_l, the last for the output
        self.ends = layer_ends(self.layers)
        self.norm = nn.RMSNorm(dim, elementwise_affine=False)

    def read(self, l: int, values: list[torch.Tensor], keys: list[torch.Tensor]) -> torch.Tensor:  # noqa: E741
        logits = torch.stack(keys) @ self.queries[l]  # (i, ...)
        return torch.einsum("i...,i...d->...d", logits.softmax(dim=0), torch.stack(values))

    def forward(self, x: torch.Tensor, **kwargs: object) -> torch.Tensor:
        values, keys = [x], [self.norm(x)]
        h = self.read(0, values, keys)
        for l, sublayer in enumerate(self.sublayers):  # noqa: E741
            out, _ = sublayer.branch(h, **kwargs)
            values.append(out)
            keys.append(self.norm(out))
            h = self.read(l + 1, values, keys)  # what the next sub-layer reads (the output, after the last)
            if l in self.ends:
                self.trace(h)
        return h


__all__ = ["AttentionResiduals", "DynamicDense"]
