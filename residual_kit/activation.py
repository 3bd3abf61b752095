"""Activations after the merge (ResNet v1's ReLU), by name: builder(inplace) -> module."""

from __future__ import annotations

from torch import nn

from .registry import Registry

ACTIVATIONS: Registry = Registry(
    "activation",
    {
        "relu": lambda inplace: nn.ReLU(inplace),
        "gelu": lambda inplace: nn.GELU(),
        "silu": lambda inplace: nn.SiLU(inplace),
        "tanh": lambda inplace: nn.Tanh(),
    },
)
"""`inplace` is True when the merge's output is a fresh tensor, which the activation may overwrite."""
