"""Depth-aware initialisation of residual networks, for any model built from `Residual`.

zero_init_last_     the last weight layer (or norm) of every branch starts at zero, so every block
                    starts as the identity (Goyal et al. 2017; torchvision's `zero_init_residual`,
                    timm's `zero_init_last`)
scale_last_         the last weight layer of every branch is scaled by 1/sqrt(N), N the number of
                    residual branches (GPT-2, Radford et al. 2019: "1/sqrt(N) ... N is the number
                    of residual layers"; nanoGPT's `c_proj` init)
gpt2_init_          GPT-2's whole init: every Linear and Embedding from N(0, 0.02), biases zero, the
                    last layer of every branch from N(0, 0.02 / sqrt(N)) (nanoGPT's `_init_weights`)
fixup_init_         Fixup (Zhang et al. 2019, Eq. 1-2 and §3): train a deep residual net with no
                    normalisation at all
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .optim import connection_parameters
from .registry import Registry
from .residual import Residual

WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm, nn.RMSNorm)


def branches(model: nn.Module) -> list[nn.Module]:
    """The branch f of every `Residual` in `model`, in order."""
    return [m.wrap for m in model.modules() if isinstance(m, Residual)]


def weight_layers(branch: nn.Module) -> list[nn.Module]:
    """The convolutions and Linear layers of a branch, in the order they were registered."""
    return [m for m in branch.modules() if isinstance(m, WEIGHT_LAYERS)]


def last_layer(branch: nn.Module) -> nn.Module | None:
    """The last weight layer or affine norm of a branch: what `zero_init_last_` sets to zero."""
    layers = [m for m in branch.modules() if isinstance(m, WEIGHT_LAYERS) or _affine_norm(m)]
    return layers[-1] if layers else None


def _affine_norm(m: nn.Module) -> bool:
    return isinstance(m, NORM_LAYERS) and getattr(m, "weight", None) is not None


@torch.no_grad()
def zero_init_last_(model: nn.Module) -> int:
    """Zero the last weight layer (or the affine norm that ends it) of every residual branch, bias
    included: each block starts as y = x. Returns the number of branches changed."""
    changed = 0
    for branch in branches(model):
        layer = last_layer(branch)
        if layer is not None:
            nn.init.zeros_(layer.weight)
            if getattr(layer, "bias", None) is not None:
                nn.init.zeros_(layer.bias)
            changed += 1
    return changed


@torch.no_grad()
def scale_last_(model: nn.Module, num_branches: int | None = None) -> int:
    """Multiply the last weight layer of every residual branch by 1/sqrt(N) (GPT-2), N the number of
    residual branches (two per Transformer layer); the residual stream then grows like sqrt(depth)
    less. Returns N."""
    found = branches(model)
    n = num_branches or len(found)
    for branch in found:
        layers = weight_layers(branch)
        if layers:
            layers[-1].weight.mul_(1 / math.sqrt(n))
    return n


@torch.no_grad()
def fixup_init_(model: nn.Module, head: nn.Module | None = None) -> float:
    """Fixup's initialisation of a network with no normalisation (Zhang et al. 2019, §3):
    1. the last weight layer of every branch, and the classifier `head`, start at zero;
    2. the other m-1 weight layers of a branch keep their standard init, scaled by L^(-1/(2m-2)),
       L the number of residual branches;
    3. a scalar multiplier (from 1) on each branch and scalar biases: give each `Residual`
       `scale="learnable"`; the layers' own biases (zero at start here) stand for the scalar biases.
    Every block is then the identity at init, and an SGD step changes the output by an amount that does
    not grow with depth. Returns the factor of rule 2 (for a branch of 2 weight layers, 1/sqrt(L)).
    """
    found = branches(model)
    num = len(found)
    factor = 1.0
    for branch in found:
        layers = weight_layers(branch)
        if not layers:
            continue
        m = len(layers)
        factor = num ** (-1 / (2 * m - 2)) if m > 1 else 1.0
        for layer in layers[:-1]:
            layer.weight.mul_(factor)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        nn.init.zeros_(layers[-1].weight)
        if layers[-1].bias is not None:
            nn.init.zeros_(layers[-1].bias)
    if head is not None:
        nn.init.zeros_(head.weight)
        if getattr(head, "bias", None) is not None:
            nn.init.zeros_(head.bias)
    return factor


@torch.no_grad()
def gpt2_init_(model: nn.Module, std: float = 0.02) -> int:
    """GPT-2's initialisation (Radford et al. 2019; nanoGPT's `_init_weights`): every Linear and Embedding
    weight from N(0, std), biases zero, and the last weight layer of every residual branch from
    N(0, std / sqrt(N)), N the number of residual branches. Returns N.

    The weights of a module that connects layers (`connects = True`: MUDDFormer's zero W2, LAuReL-LR's zero B,
    a highway gate's carry bias) keep the init their design gave them, as nanoGPT keeps `c_proj`'s own."""
    kept = {id(p) for p in connection_parameters(model).values()}
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)) and id(m.weight) not in kept:
            nn.init.normal_(m.weight, std=std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
    found = branches(model)
    for branch in found:
        layers = weight_layers(branch)
        if layers:
            nn.init.normal_(layers[-1].weight, std=std / math.sqrt(len(found)))
    return len(found)


INITS: Registry = Registry(
    "init",
    {"default": lambda model: None, "zero_last": zero_init_last_, "gpt2": gpt2_init_, "fixup": fixup_init_},
)
"""Depth-aware initialisations by name: fn(model) applied once the model is built (every model's `init`)."""


def initialise(model: nn.Module, name: str) -> None:
    """Apply `INITS[name]` to `model`; an init other than "default" that finds no residual branch layer to set
    is refused in one line rather than doing nothing."""
    init = INITS.get_builder(name)
    if name == "default":
        return
    found = [b for b in branches(model) if weight_layers(b) or last_layer(b) is not None]
    if not found:
        raise ValueError(
            f"init={name!r} found no Linear, conv or norm layer in the residual branches of {type(model).__name__} "
            "to initialise: it cannot apply to this model"
        )
    init(model)


__all__ = [
    "INITS",
    "branches",
    "fixup_init_",
    "gpt2_init_",
    "initialise",
    "last_layer",
    "scale_last_",
    "weight_layers",
    "zero_init_last_",
]
