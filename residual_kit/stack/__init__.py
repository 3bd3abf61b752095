"""Residual designs of a whole stack: what crosses layers, beyond one block's x + f(x).

Every design runs the same layers of `Residual` sub-layers (see `protocol`), so each residual option
means the same in every design:

    PlainStack            each layer after the other                     stack="plain"
    DepthWeightedAverage  after a layer, a learned average of the        stack="dense"
                          embeddings and earlier layers' outputs (DenseFormer, Pagliardini et al. 2024)
    HyperConnections      n residual streams mixed by learned width and  stack="hyper"
                          depth connections (Zhu et al. 2024), static or dynamic
    ManifoldHyperConnections
                          the same with the mixing projected onto        stack="mhc"
                          doubly stochastic matrices (mHC, DeepSeek-AI 2025)
    FracConnections       the connections between fractions of the       stack="frac"
                          stream, not copies of it (Zhu et al. 2025)
    EmbeddingMix          x = a x + b x_0 before each layer              stack="x0"
                          (modded-nanogpt's record runs)
    UNetSkips             first-half outputs added back, mirrored,       stack="unet"
                          in the second half (modded-nanogpt)
    DynamicDense          per-position learned combinations of earlier   stack="mudd"
                          outputs (MUDDFormer, Xiao et al. 2025)
    AttentionResiduals    softmax attention over earlier sub-layers'     stack="attnres"
                          outputs (Kimi Team 2026)

`build_stack(name, layers, dim, options)` builds one by name; a new design is one module plus one entry
in `STACKS`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from ..registry import Registry
from .dense import DepthWeightedAverage
from .depthwise import AttentionResiduals, DynamicDense
from .frac import FracConnections
from .hyper import HyperConnections, ManifoldHyperConnections, read_and_mix, sinkhorn
from .protocol import PlainStack, branch_only, first, sublayers
from .reinject import EmbeddingMix, UNetSkips

StackBuilder = Callable[..., nn.Module]

STACKS: Registry[StackBuilder] = Registry(
    "stack",
    {
        "plain": lambda layers, dim: PlainStack(layers),
        "dense": lambda layers, dim, dilation=1, period=1: DepthWeightedAverage(layers, dilation, period),
        "hyper": lambda layers, dim, streams=4, dynamic=True: HyperConnections(layers, dim, streams, dynamic),
        "mhc": lambda layers, dim, streams=4, dynamic=True: ManifoldHyperConnections(layers, dim, streams, dynamic),
        "frac": lambda layers, dim, fractions=2, dynamic=True: FracConnections(layers, dim, fractions, dynamic),
        "x0": lambda layers, dim: EmbeddingMix(layers),
        "unet": lambda layers, dim: UNetSkips(layers),
        "mudd": lambda layers, dim: DynamicDense(layers, dim),
        "attnres": lambda layers, dim: AttentionResiduals(layers, dim),
    },
)
"""Stack designs by name: builder(layers, dim, **options) -> module; each layer is a `Residual` or a module
of `Residual` sub-layers, and the options are the design's own (e.g. hyper-connections' `streams`)."""


def build_stack(
    name: str, layers: Sequence[nn.Module], dim: int, options: Mapping[str, Any] | None = None
) -> nn.Module:
    """The design `name` of `STACKS` over `layers`, or a one-line error for an option it does not take."""
    builder = STACKS.get_builder(name)
    options = dict(options or {})
    takes = [p for p in inspect.signature(builder).parameters if p not in ("layers", "dim")]
    unknown = [k for k in options if k not in takes]
    if unknown:
        raise ValueError(f"stack={name!r} takes no option {unknown[0]!r}; its options are {takes or 'none'}")
    return builder(layers, dim, **options)


__all__ = [
    "STACKS",
    "AttentionResiduals",
    "DepthWeightedAverage",
    "DynamicDense",
    "EmbeddingMix",
    "FracConnections",
    "HyperConnections",
    "ManifoldHyperConnections",
    "PlainStack",
    "UNetSkips",
    "branch_only",
    "build_stack",
    "first",
    "read_and_mix",
    "sinkhorn",
    "sublayers",
]
