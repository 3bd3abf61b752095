"""DenseFormer (Pagliardini et al. 2024): after a layer, a learned average of the embeddings and every
earlier layer's output."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .protocol import Traced, first


class DepthWeightedAverage(Traced, nn.Module):
    """DenseFormer: after layer i the stream is x_i' = sum_j alpha_ij X_j over j <= i + 1 (Pagliardini et al. 2024).

    X_0 is the input (the embeddings) and X_j the output of layer j, which reads x_(j-1)'. The weights start
    at alpha_ii = 1 and 0 elsewhere, which is the plain stack of the (residual) layers. The paper's sparser
    forms: with `dilation` k the average after layer i reads only the X_j with (i + 1 - j) a multiple of k,
    and with `period` p there is an average only after every p-th layer (DenseFormer's kxp variants).

    Args:
        layers: the layers, each (..., D) -> (..., D) with its own residual connection.
        dilation: k, the stride over earlier outputs (1: all of them).
        period: p, how many layers between two averages (1: after every layer).
    """

    connects = True  # its weights connect layers: no weight decay, init kept (residual_kit.optim)

    def __init__(self, layers: Sequence[nn.Module], dilation: int = 1, period: int = 1) -> None:
        super().__init__()
        if dilation < 1 or period < 1:
            raise ValueError(f"dilation={dilation} and period={period} must be at least 1")
        self.layers = nn.ModuleList(layers)
        self.dilation, self.period = dilation, period
        self.averaged = [i for i in range(len(layers)) if (i + 1) % period == 0]  # layers followed by an average
        self.alphas = nn.ParameterList()  # alpha_i over the outputs it reads, the newest last: identity at init
        self.reads: list[list[int]] = []
        for i in self.averaged:
            reads = list(range((i + 1) % dilation, i + 2, dilation))  # j with (i + 1 - j) % k == 0
            self.reads.append(reads)
            self.alphas.append(
                nn.Parameter(torch.nn.functional.one_hot(torch.tensor(len(reads) - 1), len(reads)).float())
            )

    def forward(self, x: torch.Tensor, **kwargs: object) -> torch.Tensor:
        """x (..., D) -> (..., D); keyword arguments go to every layer."""
        outputs, k = [x], 0  # X_0, then X_1 ...
        for i, layer in enumerate(self.layers):
            x = first(layer(x, **kwargs))
            outputs.append(x)
            if k < len(self.averaged) and self.averaged[k] == i:
                read = torch.stack([outputs[j] for j in self.reads[k]])  # (J, ..., D)
                x = torch.einsum("j,j...->...", self.alphas[k], read)  # the weighted average
                k += 1
            self.trace(x)
        return x

    def extra_repr(self) -> str:
        return f"layers={len(self.layers)}, dilation={self.dilation}, period={self.period}"


__all__ = ["DepthWeightedAverage"]
