"""`Residual`: turn any module f into a residual block y = x + f(x), in every variant of the literature."""

from __future__ import annotations

from typing import Any, Literal, Union

import torch
from torch import nn

from .activation import ACTIVATIONS
from .deepnorm import deepnorm_alpha, deepnorm_beta, deepnorm_init_
from .drop_path import DropPath
from .layout import DataFormat
from .merge import MERGES, Add, ScaledAdd
from .norm import NormSpec, make_norm
from .scale import SCALES, Scale
from .shortcut import SHORTCUTS, InferredShortcut
from .slot import Slot

Placement = Literal["pre", "post", "sandwich", "deepnorm"]
PLACEMENTS: tuple[str | None, ...] = (None, "pre", "post", "sandwich", "deepnorm")
"""Where the norm sits, the one vocabulary of `Residual` and of every model:
    None       x + f(x)                     no norm (ResNet v1 adds its ReLU as `activation`)
    pre        x + f(N(x))                  GPT-2, ResNet v2
    post       N(x + f(x))                  the original Transformer
    sandwich   x + N2(f(N1(x)))             CogView, NormFormer, Peri-LN
    deepnorm   N(α·x + f(x)), f's Linear weights initialised with gain β (DeepNet, Wang et al. 2022)
"""
ModuleSpec = Union[str, nn.Module, None]


class Residual(nn.Module):
    """y = act(post_norm(merge(shortcut(x), drop_path(scale(post_branch_norm(f(pre_norm(x)))))))).

    With every option at its default this is y = x + f(x). Each slot is a module (nn.Identity() when
    unused), so `forward` is the equation and nothing else. `branch(x)` is the part before the merge; a stack
    design that merges several streams itself (hyper-connections) calls it and owns the rest. State dict
    keys: `wrap.*` (f), then `pre_norm.*`, `post_branch_norm.*`, `post_norm.*`, `shortcut.*`, `scale.*`,
    `merge.*`, present only where the slot has weights.

    If f returns a tuple (nn.LSTM, nn.GRU, nn.MultiheadAttention), the residual applies to its first
    element and the rest comes back untouched. Extra positional and keyword arguments go to f.

    Args:
        wrap: the branch f.
        norm: the norm layer: a name in `NORMS` ("layer", "rms", "batch", "group", "dyt"), a class or factory
            called with the width, or a module (copied per slot). Used only where `placement` puts one.
        placement: where the norm sits, one of `PLACEMENTS`: None, "pre", "post", "sandwich", "deepnorm".
        dim: width of x (channels or features); needed to build norms, explicit shortcuts, merges.
        out_dim: width of f(x), when it differs from `dim`.
        stride: spatial subsampling done by f (conv features), for explicit shortcuts.
        data_format: "channels_last" for (B, ..., D) sequences, "channels_first" for (B, C, H, W).
        depth: layers of the stack this block is in; "deepnorm" needs it (α = (2N)^¼, β = (8N)^-¼), and
            "layerscale" takes CaiT's ε for it.
        shortcut: a name in `SHORTCUTS`: "identity"; "projection" (1x1 conv + norm, or Linear); "pad"
            (option A: subsample and zero-pad channels); or any module. Projection and pad read their
            sizes from the first forward unless `out_dim` is given.
        scale: branch scale: a float, a name in `SCALES`: "learnable" (scalar from 1), "rezero" (scalar from 0),
            "layerscale" (per-channel, from CaiT's ε), or a module such as `LayerScale(dim, init=0.1)`.
        drop_path: probability of dropping the branch per sample while training (stochastic depth).
        merge: a name in `MERGES`: "add" (s + b), "gate" (highway sigmoid gate), "concat" (concat then 1x1 fuse),
            or a module called as merge(s, b), e.g. `ScaledAdd(alpha)`.
        activation: applied after the merge (ResNet v1's ReLU): a name in `ACTIVATIONS` ("relu",
            "gelu", "silu", "tanh"), a module, or None.

    A new variant of any slot is one class plus one registration, e.g.
    `MERGES.register("mean", lambda slot: Mean())`, after which `Residual(f, merge="mean")` and every
    model's `merge="mean"` build it.
    """

    def __init__(
        self,
        wrap: nn.Module,
        *,
        norm: NormSpec = "layer",
        placement: Placement | None = None,
        dim: int | None = None,
        out_dim: int | None = None,
        stride: int = 1,
        data_format: DataFormat = "channels_last",
        depth: int | None = None,
        shortcut: ModuleSpec = "identity",
        scale: float | ModuleSpec = None,
        drop_path: float = 0.0,
        merge: ModuleSpec = "add",
        activation: ModuleSpec = None,
    ) -> None:
        super().__init__()
        if placement not in PLACEMENTS:
            raise ValueError(f"placement={placement!r} is not one of {PLACEMENTS}")
        if not 0.0 <= drop_path <= 1.0:
            raise ValueError(f"drop_path must be a probability in [0, 1], got {drop_path}")
        slot = Slot(dim, out_dim, stride, data_format, depth)
        self.placement, self.data_format = placement, data_format
        if placement == "deepnorm":
            if depth is None:
                raise ValueError("placement='deepnorm' needs depth= (the layers of the stack, N in α = (2N)^¼)")
            merge = _deepnorm_merge(merge, deepnorm_alpha(depth))
            deepnorm_init_(wrap, deepnorm_beta(depth))

        self.wrap = wrap
        self.pre_norm = make_norm(norm if placement in ("pre", "sandwich") else None, dim, data_format)
        self.post_branch_norm = make_norm(norm if placement == "sandwich" else None, slot.branch_dim, data_format)
        self.shortcut = self._make_shortcut(shortcut, slot)
        self.scale = _make_scale(scale, slot)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.merge = merge if isinstance(merge, nn.Module) else MERGES.get_builder(merge)(_merge_slot(shortcut, slot))
        post = placement in ("post", "deepnorm")
        self.post_norm = make_norm(norm if post else None, slot.branch_dim, data_format)
        # a merge that returns a fresh tensor lets the activation overwrite it when no post-norm follows:
        # one allocation less per block, and never the caller's x
        self.activation = _make_activation(activation, slot, inplace=getattr(self.merge, "fresh", False) and not post)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        b, rest = self.branch(x, *args, **kwargs)
        s = self.shortcut(x)
        _check_mergeable(x, s, b, self.merge, self.shortcut)
        y = self.activation(self.post_norm(self.merge(s, b)))
        return y if rest is None else (y, *rest)

    def branch(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, tuple[Any, ...] | None]:
        """drop_path(scale(post_branch_norm(f(pre_norm(x))))), and the rest of what f returned (None if f
        returns a tensor)."""
        out = self.wrap(self.pre_norm(x), *args, **kwargs)
        f, rest = (out[0], tuple(out[1:])) if isinstance(out, (tuple, list)) else (out, None)
        return self.drop_path(self.scale(self.post_branch_norm(f))), rest

    def after_branch(self) -> dict[str, object]:
        """The options that act after the branch (on the merge), at other than their plain values: what a
        stack design that merges the streams itself cannot honour."""
        acting = {
            "placement": self.placement if self.placement in ("post", "deepnorm") else None,
            "shortcut": None if isinstance(self.shortcut, nn.Identity) else _words(self.shortcut, "x"),
            "merge": None if type(self.merge) is Add else _words(self.merge, "s", "b"),
            "activation": None if isinstance(self.activation, nn.Identity) else type(self.activation).__name__,
        }
        return {k: v for k, v in acting.items() if v is not None}

    def _make_shortcut(self, spec: ModuleSpec, slot: Slot) -> nn.Module:
        if isinstance(spec, nn.Module):
            return spec
        shortcut = SHORTCUTS.get_builder(spec)(slot)
        if isinstance(shortcut, InferredShortcut) and not shortcut.inferred:
            handle = None

            def infer_once(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
                shortcut.infer(args[0], output[0] if isinstance(output, (tuple, list)) else output)
                handle.remove()

            handle = self.wrap.register_forward_hook(infer_once)
        return shortcut

    def __repr__(self) -> str:
        """The formula, then only the slots in use (unused ones are nn.Identity and say nothing)."""
        lines = [f"Residual({self.formula()}"]
        for name, module in self.named_children():
            if not isinstance(module, nn.Identity):
                lines.append(f"  ({name}): " + repr(module).replace("\n", "\n  "))
        return "\n".join(lines) + ("\n)" if len(lines) > 1 else ")")

    def formula(self) -> str:
        """The block's equation in words, e.g. 'y = relu(pad(x) + f(x))'; each slot writes its own part."""
        fx = "f(norm(x))" if self.placement in ("pre", "sandwich") else "f(x)"
        if self.placement == "sandwich":
            fx = f"norm2({fx})"
        fx = _words(self.drop_path, _words(self.scale, fx))
        y = _words(self.merge, _words(self.shortcut, "x"), fx)
        if self.placement in ("post", "deepnorm"):
            y = f"norm({y})"
        if not isinstance(self.activation, nn.Identity):
            y = f"{type(self.activation).__name__.lower()}({y})"
        return f"y = {y}"


def _words(slot: nn.Module, *args: str) -> str:
    """The slot's part of the formula: its own `formula(...)`, nothing for an unused slot, else its name."""
    if hasattr(slot, "formula"):
        return slot.formula(*args)
    if isinstance(slot, nn.Identity):
        return args[-1]
    return f"{type(slot).__name__}({', '.join(args)})"


def _check_mergeable(x: torch.Tensor, s: torch.Tensor, b: torch.Tensor, merge: nn.Module, shortcut: nn.Module) -> None:
    if getattr(merge, "reshapes", False) or s.shape == b.shape:
        return
    raise ValueError(
        f"Residual cannot merge the shortcut, shape {tuple(s.shape)}, with the branch output, shape "
        f"{tuple(b.shape)} (input x: {tuple(x.shape)}, shortcut: {_words(shortcut, 'x')}). "
        "The branch changes the shape of x: use shortcut='projection' (learned 1x1 conv or Linear), "
        "shortcut='pad' (option A: subsample and zero-pad channels), pass out_dim= and stride= for "
        "an explicit shortcut, or merge='concat'."
    )


def _deepnorm_merge(merge: ModuleSpec, alpha: float) -> nn.Module:
    """DeepNet's α·s + b in place of the plain addition (in place where the given addition was)."""
    if merge == "add" or type(merge) is Add:
        return ScaledAdd(alpha, inplace=getattr(merge, "inplace", False))
    raise ValueError(f"placement='deepnorm' weights the shortcut of an addition: it takes merge='add', not {merge!r}")


def _make_scale(spec: float | ModuleSpec, slot: Slot) -> nn.Module:
    if spec is None:
        return nn.Identity()
    if isinstance(spec, nn.Module):
        return spec
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return Scale(spec)
    if not isinstance(spec, str):
        raise TypeError(f"scale must be a float, a name in SCALES, a module or None, got {type(spec).__name__}")
    return SCALES.get_builder(spec)(slot.after_branch())


def _merge_slot(shortcut: ModuleSpec, slot: Slot) -> Slot:
    """The merge's slot: s is x through the identity shortcut, as wide as f(x) through a projection or a pad,
    and of a width unknown until the first call through a module (`dim` None)."""
    s_dim = None if isinstance(shortcut, nn.Module) else slot.dim if shortcut == "identity" else slot.branch_dim
    return Slot(s_dim, slot.branch_dim, 1, slot.data_format, slot.depth)


def _make_activation(spec: ModuleSpec, slot: Slot, inplace: bool) -> nn.Module:
    if spec is None:
        return nn.Identity()
    if isinstance(spec, nn.Module):
        return spec
    activation = ACTIVATIONS.get_builder(spec)(slot)
    if inplace and hasattr(activation, "inplace"):
        activation.inplace = True
    return activation
