"""The one protocol of every stack design: it runs layers made of `Residual` sub-layers.

A design that keeps each sub-layer's own merge (plain, DenseFormer) calls the layers; a design that merges
the residual streams itself (hyper-connections) calls each sub-layer's `branch` and owns what comes after
it. Either way placement, norm, scale, drop path and the depth-aware inits live in the sub-layers and mean
the same in every design; an option a design cannot honour is refused when it is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..residual import Residual


def sublayers(layer: nn.Module) -> list[Residual]:
    """The residual sub-layers of one layer: the layer itself if it is a `Residual`, else its `Residual`
    children in order (a Transformer layer's attention and MLP). A bare module f counts as `Residual(f)`."""
    if isinstance(layer, Residual):
        return [layer]
    found = [m for m in layer.children() if isinstance(m, Residual)]
    return found or [Residual(layer)]


def first(out: Any) -> torch.Tensor:
    """The tensor a layer returns, or the first of its tuple (an LSTM's output beside its state)."""
    return out[0] if isinstance(out, (tuple, list)) else out


def branch_only(blocks: Sequence[Residual], design: str) -> list[Residual]:
    """The sub-layers of a design that merges the streams itself, or a one-line error naming an option of theirs
    that acts on the merge (post-norm, a shortcut, another merge, an activation), which it cannot honour."""
    for block in blocks:
        acting = block.after_branch()
        if acting:
            option, value = next(iter(acting.items()))
            raise ValueError(
                f"stack={design!r} merges the residual streams itself, so its sub-layers' {option}={value!r} "
                "cannot apply: use placement 'pre', 'sandwich' or None, and the plain shortcut, merge and activation"
            )
    return list(blocks)


class PlainStack(nn.ModuleList):
    """The plain stack: each layer after the other, keyword arguments to every layer."""

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        super().__init__(layers)

    def forward(self, x: torch.Tensor, **kwargs: object) -> torch.Tensor:
        for layer in self:
            x = first(layer(x, **kwargs))
        return x


__all__ = ["PlainStack", "branch_only", "first", "sublayers"]
