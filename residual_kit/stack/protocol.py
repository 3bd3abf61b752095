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


class Traced:
    """What a stack design carries between layers, kept for inspection when asked (`trace_streams`).

    Every design calls `trace(state)` after each layer with the representation it hands on, a tensor of the
    computation (so its gradient can be read): the stream (plain, DenseFormer's average), all n streams
    (hyper-connections) or fractions (frac-connections), the next read (Attention Residuals); designs that mix
    streams also call `trace_mix(A_r)` for each sub-layer's mixing matrix. Nothing is kept unless `traced` (or
    `traced_mixes`) is a list.
    """

    traced: list[torch.Tensor] | None = None
    traced_mixes: list[torch.Tensor] | None = None

    def trace(self, state: torch.Tensor) -> None:
        if self.traced is not None:
            self.traced.append(state)

    def trace_mix(self, mix: torch.Tensor) -> None:
        if self.traced_mixes is not None:
            self.traced_mixes.append(mix)


class PlainStack(Traced, nn.ModuleList):
    """The plain stack: each layer after the other, keyword arguments to every layer."""

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        super().__init__(layers)

    def forward(self, x: torch.Tensor, **kwargs: object) -> torch.Tensor:
        for layer in self:
            x = first(layer(x, **kwargs))
            self.trace(x)
        return x


def layer_ends(layers: Sequence[nn.Module]) -> set[int]:
    """The indices, among all sub-layers in order, of the last sub-layer of each layer."""
    ends, count = set(), 0
    for layer in layers:
        count += len(sublayers(layer))
        ends.add(count - 1)
    return ends


__all__ = ["PlainStack", "Traced", "branch_only", "first", "layer_ends", "sublayers"]
