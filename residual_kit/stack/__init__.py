"""Residual designs of a whole stack: what crosses layers, beyond one block's x + f(x).

Every design runs the same layers of `Residual` sub-layers (see `protocol`), so each residual option means the
same in every design. A design is one class whose constructor takes the layers (and `dim`, the width, if it needs
it) and its own options; `STACKS` registers it once, and `build_stack` reads its options from its constructor.
`describe_stacks()` lists every registered design with the first line of its docstring.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from ..registry import Registry
from .canon import Canon, CanonLayers
from .dense import DepthWeightedAverage
from .dual import ResiDual
from .dynamic_depth import AttentionResiduals, DynamicDense
from .frac import FracConnections
from .hyper import (
    HyperConnections,
    ManifoldHyperConnections,
    PermutationHyperConnections,
    read_and_mix,
    sinkhorn,
)
from .protocol import PlainStack, branch_only, first, sublayers
from .reinject import Backout, EmbeddingMix, UNetSkips

StackBuilder = Callable[..., nn.Module]

STACKS: Registry[StackBuilder] = Registry(
    "stack",
    {
        "plain": PlainStack,
        "dense": DepthWeightedAverage,
        "hyper": HyperConnections,
        "mhc": ManifoldHyperConnections,
        "mhc_lite": PermutationHyperConnections,
        "frac": FracConnections,
        "x0": EmbeddingMix,
        "unet": UNetSkips,
        "backout": Backout,
        "mudd": DynamicDense,
        "attnres": AttentionResiduals,
        "resi_dual": ResiDual,
        "canon": CanonLayers,
    },
)
"""Stack designs by name: a class (or function) called as builder(layers, [dim,] **options), options read from
its signature; e.g. `STACKS.register("mine", MyStack)`. A design that needs its sub-layers built a certain way
says so in `sublayer_options` (ResiDual: placement=None), which `required_options` reads."""


def required_options(name: str) -> dict[str, Any]:
    """The model options a design needs of its sub-layers (e.g. {"placement": None}), {} for most."""
    return dict(getattr(STACKS.get_builder(name), "sublayer_options", {}))


def stack_options(name: str) -> dict[str, Any]:
    """The design's own options and their defaults, read from its constructor."""
    signature = inspect.signature(STACKS.get_builder(name))
    return {k: p.default for k, p in signature.parameters.items() if k not in ("layers", "dim")}


def build_stack(
    name: str, layers: Sequence[nn.Module], dim: int, options: Mapping[str, Any] | None = None
) -> nn.Module:
    """The design `name` of `STACKS` over `layers`, or a one-line error for an option it does not take."""
    builder = STACKS.get_builder(name)
    options, takes = dict(options or {}), list(stack_options(name))
    unknown = [k for k in options if k not in takes]
    if unknown:
        raise ValueError(f"stack={name!r} takes no option {unknown[0]!r}; its options are {takes or 'none'}")
    if "dim" in inspect.signature(builder).parameters:
        options["dim"] = dim
    return builder(layers, **options)


def describe_stacks() -> dict[str, str]:
    """Every registered design and the first line of its docstring: the table the docs show."""
    return {name: (inspect.getdoc(builder) or "").split("\n")[0] for name, builder in STACKS.items()}


__all__ = [
    "STACKS",
    "AttentionResiduals",
    "Backout",
    "Canon",
    "CanonLayers",
    "DepthWeightedAverage",
    "DynamicDense",
    "EmbeddingMix",
    "FracConnections",
    "HyperConnections",
    "ManifoldHyperConnections",
    "PermutationHyperConnections",
    "PlainStack",
    "ResiDual",
    "UNetSkips",
    "branch_only",
    "build_stack",
    "describe_stacks",
    "first",
    "read_and_mix",
    "required_options",
    "sinkhorn",
    "stack_options",
    "sublayers",
]
