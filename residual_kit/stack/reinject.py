"""Designs that feed earlier representations forward in the plain stack of residual layers (modded-nanogpt's
record runs): the embedding re-injected into every layer, U-Net skips from the first half to the second, and an
earlier stream taken back out at the end (backout)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .protocol import Traced, first


class EmbeddingMix(Traced, nn.Module):
    """x = x_0 = RMSNorm(input), then before layer l: x = a_l x + b_l x_0, with a_l = 1 and b_l = 0 at init
    (modded-nanogpt's `x0` lambdas): the stream starts from the normalised embeddings, as the record runs' GPT
    does (`x = x0 = norm(embed(idx))`), and the design then starts as the plain stack over them.

    Args:
        layers: the layers, each with its own residual connection.
    """

    scalars = ("mix",)  # modded-nanogpt's x0 lambdas

    connects = True  # its weights connect layers: no weight decay, init kept (residual_kit.optim)

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.mix = nn.Parameter(torch.tensor([[1.0, 0.0]]).repeat(len(layers), 1))  # (L, 2): a_l, b_l

    def forward(self, x: torch.Tensor, **kwargs: object) -> torch.Tensor:
        x = x0 = F.rms_norm(x, x.shape[-1:])
        for (a, b), layer in zip(self.mix, self.layers, strict=True):
            x = first(layer(a * x + b * x0, **kwargs))
            self.trace(x)
        return x


class UNetSkips(Traced, nn.Module):
    """U-Net skips over depth (modded-nanogpt): layer i of the first half pushes its output, and before layer
    L - 1 - i of the second half x = x + w_i x_i pops it back, w_i learned from 1 (the record runs' init).

    Args:
        layers: the layers, each with its own residual connection; with an odd count the middle one has no skip.
    """

    scalars = ("weights",)

    connects = True  # its weights connect layers: no weight decay, init kept (residual_kit.optim)

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(layers) < 2:
            raise ValueError(f"stack='unet' needs at least 2 layers to skip between, got {len(layers)}")
        self.layers = nn.ModuleList(layers)
        self.weights = nn.Parameter(torch.ones(len(layers) // 2))

    def forward(self, x: torch.Tensor, **kwargs: object) -> torch.Tensor:
        half, skips = len(self.layers) // 2, []
        for i, layer in enumerate(self.layers):
            j = len(self.layers) - 1 - i  # the first-half layer this one mirrors
            if j < half:
                x = x + self.weights[j] * skips.pop()
            x = first(layer(x, **kwargs))
            self.trace(x)
            if i < half:
                skips.append(x)
        return x


class Backout(Traced, nn.Module):
    """y = x_L - λ x_k: the stream after layer k is kept, and λ times it taken out after the last layer
    (modded-nanogpt's backout, record PR #140 after snimu's PR #138): what the early layers wrote as context for
    later layers need not reach the prediction. λ is learned from 0, so the design starts as the plain stack.

    Args:
        layers: the layers, each with its own residual connection.
        at: k, the layer whose output is kept (1-based); default ⌈2L/3⌉ (8 of the record's 11 layers), at most L-1.
    """

    scalars = ("weight",)  # λ

    connects = True  # its weights connect layers: no weight decay, init kept (residual_kit.optim)

    def __init__(self, layers: Sequence[nn.Module], at: int | None = None) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        n = len(layers)
        self.at = min(math.ceil(2 * n / 3), max(1, n - 1)) if at is None else at
        if not 1 <= self.at <= n:
            raise ValueError(f"at={self.at} must name one of the {n} layers (1-based)")
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, **kwargs: object) -> torch.Tensor:
        kept = x
        for i, layer in enumerate(self.layers):
            x = first(layer(x, **kwargs))
            self.trace(x)
            if i + 1 == self.at:
                kept = x
        return x - self.weight * kept

    def extra_repr(self) -> str:
        return f"at={self.at}"


__all__ = ["Backout", "EmbeddingMix", "UNetSkips"]
