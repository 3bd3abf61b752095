"""Activations after the merge (ResNet v1's ReLU), by name: builder(slot) -> module."""

from __future__ import annotations

from torch import nn

from .registry import Registry

ACTIVATIONS: Registry = Registry(
    "activation",
    {
        "relu": lambda slot: nn.ReLU(),
        "gelu": lambda slot: nn.GELU(),
        "silu": lambda slot: nn.SiLU(),
        "tanh": lambda slot: nn.Tanh(),
    },
)
"""`Residual` sets `inplace = True` on an activation that has the attribute when the merge's output is a fresh
tensor, which the activation may then overwrite."""
