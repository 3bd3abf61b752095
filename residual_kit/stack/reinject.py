"""Designs that feed earlier representations forward in the plain stack of residual layers (modded-nanogpt's
record runs): the embedding re-injected into every layer, and U-Net skips from the first half to the second."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .protocol import Traced, first


class EmbeddingMix(Traced, nn.Module):
    """Before layer l: x = a_l x + b_l x_0, x_0 the stack's input (the embeddings), a_l = 1 and b_l = 0 at init,
    so the design starts as the plain stack (modded-nanogpt's value of `lambdas` for its `x0` mixing).

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
        x0 = x
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


__all__ = ["EmbeddingMix", "UNetSkips"]
