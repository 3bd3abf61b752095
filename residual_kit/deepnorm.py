"""DeepNet (Wang et al. 2022): y = LN(alpha * x + f(x)), with branch weights scaled by beta at init.

Depths are counted in layers (one attention + one MLP sub-layer each), as in the paper's Table 1. The block itself
is `Residual(f, placement="deepnorm", depth=N, dim=D)`; an encoder-decoder model's blocks take these functions'
`num_decoder_layers` form through `Residual(deepnorm_init_(f, beta), placement="post", merge=ScaledAdd(alpha))`.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Stack = Literal["encoder", "decoder"]


def deepnorm_alpha(num_layers: int, stack: Stack = "encoder", num_decoder_layers: int | None = None) -> float:
    """Shortcut weight alpha: (2N)^1/4 for an encoder- or decoder-only stack of N layers.

    For an encoder-decoder model, pass `num_decoder_layers=M`: the encoder gets 0.81 (N^4 M)^1/16 and
    the decoder (3M)^1/4.
    """
    _check(num_layers, stack)
    if num_decoder_layers is None:
        return (2 * num_layers) ** 0.25
    n, m = num_layers, num_decoder_layers
    return 0.81 * (n**4 * m) ** (1 / 16) if stack == "encoder" else (3 * m) ** 0.25


def deepnorm_beta(num_layers: int, stack: Stack = "encoder", num_decoder_layers: int | None = None) -> float:
    """Init gain beta: (8N)^-1/4 alone; 0.87 (N^4 M)^-1/16 (encoder) or (12M)^-1/4 (decoder) together."""
    _check(num_layers, stack)
    if num_decoder_layers is None:
        return (8 * num_layers) ** -0.25
    n, m = num_layers, num_decoder_layers
    return 0.87 * (n**4 * m) ** (-1 / 16) if stack == "encoder" else (12 * m) ** -0.25


@torch.no_grad()
def deepnorm_init_(module: nn.Module, beta: float) -> nn.Module:
    """Xavier-normal init with gain beta for every Linear in `module` (the paper's value/output/FFN init).

    A submodule with a `deepnorm_init_(beta)` method of its own initialises itself instead (attention,
    which scales its values and output but not its queries and keys).
    """
    own = getattr(module, "deepnorm_init_", None)
    if own is not None:
        own(beta)
        return module
    if isinstance(module, nn.Linear):
        nn.init.xavier_normal_(module.weight, gain=beta)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    for child in module.children():
        deepnorm_init_(child, beta)
    return module


def _check(num_layers: int, stack: str) -> None:
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    if stack not in ("encoder", "decoder"):
        raise ValueError(f"stack={stack!r} is not one of ('encoder', 'decoder')")
