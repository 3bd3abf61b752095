"""One optimiser policy for every model: which parameters take weight decay, and which are scalars.

Weight decay pulls a weight toward 0. For the weight matrices of Linear, convolution and Embedding layers that
is the regulariser AdamW means (Loshchilov & Hutter 2019); for a norm's gain, a bias, a branch scale or the
weights that connect layers (hyper-connections' mixing, DenseFormer's averages, x0's lambdas) 0 is no neutral
value, so they take none (nanoGPT decays matrices only; timm asks each model's `no_weight_decay()`). Each module
declares its own, beside the parameters it owns:

    connects = True         its own parameters (not those of the `Residual` sub-layers it holds) connect layers:
                            no weight decay, and a model-wide init (GPT-2's) leaves them as the design set them
    scalars = ("name", ...) its own parameters that multiply a stream (per-layer lambdas, branch scales): no
                            weight decay, and a learning rate of their own if asked (modded-nanogpt and nanochat
                            train their lambdas with a rate apart from the matrices')

`param_groups(model, weight_decay, lr, scalar_lr)` builds the groups every trainer hands to its optimiser.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .residual import Residual

DECAYED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding, nn.RNNBase)
"""Layers whose weight matrices (`weight`; a recurrent layer's `weight_*`) take weight decay, unless a module that
holds them says they connect layers."""


def own_parameters(module: nn.Module) -> dict[str, nn.Parameter]:
    """`module`'s parameters outside the layers and `Residual` sub-layers it holds (a stack design's own weights,
    not its layers'), by name relative to it."""
    held = [m for m in module.modules() if m is not module and isinstance(m, Residual)]
    held += [module.layers] if isinstance(getattr(module, "layers", None), nn.Module) else []
    inside = {id(p) for m in held for p in m.parameters()}
    return {n: p for n, p in module.named_parameters() if id(p) not in inside}


def connection_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Every parameter of a module that declares `connects = True`, outside its `Residual` sub-layers, by full name."""
    found = {}
    for prefix, module in model.named_modules():
        if getattr(module, "connects", False):
            found |= {f"{prefix}.{n}" if prefix else n: p for n, p in own_parameters(module).items()}
    return found


def scalar_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Every parameter a module names in its `scalars`, by full name."""
    found = {}
    for prefix, module in model.named_modules():
        for name in getattr(module, "scalars", ()):
            p = getattr(module, name, None)  # a scalar a module creates only in some layers may be absent
            if isinstance(p, nn.Parameter):
                found[f"{prefix}.{name}" if prefix else name] = p
    return found


def decayed_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The parameters that take weight decay: the weights of `DECAYED_LAYERS` that are no connection or scalar."""
    exempt = {id(p) for p in (connection_parameters(model) | scalar_parameters(model)).values()}
    found = {}
    for prefix, module in model.named_modules():
        if not isinstance(module, DECAYED_LAYERS):
            continue
        for name, p in module.named_parameters(recurse=False):
            if name.startswith("weight") and id(p) not in exempt:
                found.setdefault(id(p), (f"{prefix}.{name}" if prefix else name, p))
    return dict(found.values())


def no_weight_decay(model: nn.Module) -> set[str]:
    """The names of the parameters that take no weight decay (timm's `no_weight_decay()`, derived)."""
    decayed = {id(p) for p in decayed_parameters(model).values()}
    return {n for n, p in model.named_parameters() if id(p) not in decayed}


def param_groups(
    model: nn.Module, weight_decay: float, lr: float | None = None, scalar_lr: float | None = None
) -> list[dict[str, Any]]:
    """The optimiser's parameter groups: decayed weights with `weight_decay`; the rest with none; the scalars
    with none and, where `scalar_lr` is given, that learning rate (else the optimiser's `lr`). Tied weights once.

    Args:
        model: any module; its modules' `connects` and `scalars` declare their parameters.
        weight_decay: decoupled weight decay of the decayed weights.
        lr: the learning rate of every group but the scalars' (None: the optimiser's own default).
        scalar_lr: the scalars' learning rate (None: the same as the others').
    """
    decayed = {id(p) for p in decayed_parameters(model).values()}
    scalars = {id(p) for p in scalar_parameters(model).values()} if scalar_lr is not None else set()
    groups: dict[str, list[nn.Parameter]] = {"decay": [], "no_decay": [], "scalars": []}
    for p in model.parameters():
        if p.requires_grad:
            groups["decay" if id(p) in decayed else "scalars" if id(p) in scalars else "no_decay"].append(p)
    rate = {} if lr is None else {"lr": lr}
    out = [
        {"name": "decay", "params": groups["decay"], "weight_decay": weight_decay, **rate},
        {"name": "no_decay", "params": groups["no_decay"], "weight_decay": 0.0, **rate},
        {"name": "scalars", "params": groups["scalars"], "weight_decay": 0.0, "lr": scalar_lr},
    ]
    return [g for g in out if g["params"]]


__all__ = [
    "DECAYED_LAYERS",
    "connection_parameters",
    "decayed_parameters",
    "no_weight_decay",
    "own_parameters",
    "param_groups",
    "scalar_parameters",
]
