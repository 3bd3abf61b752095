"""`Residual`: turn any module f into a residual block y = x + f(x), in every variant of the literature."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Union

import torch
from torch import nn

from .drop_path import DropPath
from .layout import DataFormat, check_data_format
from .merge import Add, ConcatFuse, GatedMerge, ScaledAdd
from .norm import NormSpec, make_norm
from .scale import LayerScale, LearnableScale, ReZero, Scale
from .shortcut import InferredShortcut, PadShortcut, Projection

Placement = Literal["pre", "post", "sandwich"]
PLACEMENTS: tuple[str | None, ...] = ("pre", "post", "sandwich", None)
SHORTCUTS: tuple[str, ...] = ("identity", "projection", "pad")
MERGES: tuple[str, ...] = ("add", "gate", "concat")
SCALES: tuple[str, ...] = ("learnable", "rezero", "layerscale")
ACTIVATIONS: dict[str, Callable[[bool], nn.Module]] = {
    "relu": lambda inplace: nn.ReLU(inplace),
    "gelu": lambda inplace: nn.GELU(),
    "silu": lambda inplace: nn.SiLU(inplace),
    "tanh": lambda inplace: nn.Tanh(),
}

ModuleSpec = Union[str, nn.Module, None]


class Residual(nn.Module):
    """y = act(post_norm(merge(shortcut(x), drop_path(scale(post_branch_norm(f(pre_norm(x)))))))).

    With every option at its default this is y = x + f(x). Each slot is a module (nn.Identity() when
    unused), so `forward` is the equation and nothing else. State dict keys: `wrap.*` (f), then
    `pre_norm.*`, `post_branch_norm.*`, `post_norm.*`, `shortcut.*`, `scale.*`, `merge.*`, present
    only where the slot has weights.

    If f returns a tuple (nn.LSTM, nn.GRU, nn.MultiheadAttention), the residual applies to its first
    element and the rest comes back untouched. Extra positional and keyword arguments go to f.

    Args:
        wrap: the branch f.
        norm: the norm layer: "layer", "rms", "batch", "group", a class or factory called with the
            width, or a module (copied per slot). Used only where `placement` puts one.
        placement: "pre" (x + f(N(x))), "post" (N(x + f(x))), "sandwich" (x + N2(f(N1(x)))) or None.
        dim: width of x (channels or features); needed to build norms, explicit shortcuts, merges.
        out_dim: width of f(x), when it differs from `dim`.
        stride: spatial subsampling done by f (conv features), for explicit shortcuts.
        data_format: "channels_last" for (B, ..., D) sequences, "channels_first" for (B, C, H, W).
        shortcut: "identity"; "projection" (1x1 conv + norm, or Linear); "pad" (option A: subsample
            and zero-pad channels); or any module. Projection and pad read their sizes from the first
            forward unless `out_dim` is given.
        scale: branch scale: a float, "learnable" (scalar from 1), "rezero" (scalar from 0),
            "layerscale" (per-channel, from 1e-5), or a module such as `LayerScale(dim, init=0.1)`.
        drop_path: probability of dropping the branch per sample while training (stochastic depth).
        merge: "add" (s + b), "gate" (highway sigmoid gate), "concat" (concat then 1x1 fuse), or a
            module called as merge(s, b), e.g. `ScaledAdd(alpha)` for DeepNet.
        activation: applied after the merge (ResNet v1's ReLU): "relu", "gelu", "silu", "tanh", a
            module, or None.
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
        shortcut: ModuleSpec = "identity",
        scale: float | ModuleSpec = None,
        drop_path: float = 0.0,
        merge: ModuleSpec = "add",
        activation: ModuleSpec = None,
    ) -> None:
        super().__init__()
        _check_choice("placement", placement, PLACEMENTS)
        check_data_format(data_format)
        if not 0.0 <= drop_path <= 1.0:
            raise ValueError(f"drop_path must be a probability in [0, 1], got {drop_path}")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        out = out_dim if out_dim is not None else dim
        self.placement = placement
        self.data_format = data_format

        self.wrap = wrap
        self.pre_norm = make_norm(norm if placement in ("pre", "sandwich") else None, dim, data_format)
        self.post_branch_norm = make_norm(norm if placement == "sandwich" else None, out, data_format)
        self.shortcut = self._make_shortcut(shortcut, dim, out_dim, stride, data_format)
        self.scale = _make_scale(scale, out, data_format)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        s_dim = out if shortcut in ("projection", "pad") else dim  # a module shortcut is taken to keep the width
        self.merge = _make_merge(merge, s_dim, out, data_format)
        self.post_norm = make_norm(norm if placement == "post" else None, out, data_format)
        # A built-in merge returns a fresh tensor, so with no post-norm the activation may overwrite it:
        # one allocation less per block (ResNet-20 trains ~5% faster on CPU) and never the caller's x.
        fresh = isinstance(self.merge, (Add, ScaledAdd, GatedMerge, ConcatFuse)) and placement != "post"
        self.activation = _make_activation(activation, inplace=fresh)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        out = self.wrap(self.pre_norm(x), *args, **kwargs)
        branch, rest = (out[0], tuple(out[1:])) if isinstance(out, (tuple, list)) else (out, None)
        b = self.drop_path(self.scale(self.post_branch_norm(branch)))
        s = self.shortcut(x)
        _check_mergeable(x, s, b, self.merge, self.shortcut)
        y = self.activation(self.post_norm(self.merge(s, b)))
        return y if rest is None else (y, *rest)

    def _make_shortcut(
        self, spec: ModuleSpec, dim: int | None, out_dim: int | None, stride: int, data_format: DataFormat
    ) -> nn.Module:
        if isinstance(spec, nn.Module):
            return spec
        _check_choice("shortcut", spec, SHORTCUTS)
        if spec == "identity":
            return nn.Identity()
        if out_dim is not None and spec == "pad":
            return PadShortcut(out_dim, stride, data_format)
        if out_dim is not None and dim is not None:
            return Projection(dim, out_dim, stride, data_format)
        inferred = InferredShortcut(spec, data_format)  # type: ignore[arg-type]
        handle = None

        def infer_once(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            inferred.infer(args[0], output[0] if isinstance(output, (tuple, list)) else output)
            handle.remove()

        handle = self.wrap.register_forward_hook(infer_once)
        return inferred

    def __repr__(self) -> str:
        """The formula, then only the slots in use (unused ones are nn.Identity and say nothing)."""
        lines = [f"Residual({self.formula()}"]
        for name, module in self.named_children():
            if not isinstance(module, nn.Identity):
                lines.append(f"  ({name}): " + repr(module).replace("\n", "\n  "))
        return "\n".join(lines) + ("\n)" if len(lines) > 1 else ")")

    def formula(self) -> str:
        """The block's equation in words, e.g. 'y = relu(pad(x) + f(x))'."""
        fx = "f(norm(x))" if self.placement in ("pre", "sandwich") else "f(x)"
        if self.placement == "sandwich":
            fx = f"norm2({fx})"
        fx = _scale_words(self.scale, fx)
        if isinstance(self.drop_path, DropPath):
            fx = f"drop_path({fx}, p={self.drop_path.p})"
        sx = _shortcut_words(self.shortcut)
        y = _merge_words(self.merge, sx, fx)
        if self.placement == "post":
            y = f"norm({y})"
        if not isinstance(self.activation, nn.Identity):
            y = f"{type(self.activation).__name__.lower()}({y})"
        return f"y = {y}"


def _check_choice(name: str, value: object, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {allowed}")


def _check_mergeable(x: torch.Tensor, s: torch.Tensor, b: torch.Tensor, merge: nn.Module, shortcut: nn.Module) -> None:
    if isinstance(merge, ConcatFuse) or s.shape == b.shape:
        return
    raise ValueError(
        f"Residual cannot merge the shortcut, shape {tuple(s.shape)}, with the branch output, shape "
        f"{tuple(b.shape)} (input x: {tuple(x.shape)}, shortcut: {_shortcut_words(shortcut)}). "
        "The branch changes the shape of x: use shortcut='projection' (learned 1x1 conv or Linear), "
        "shortcut='pad' (option A: subsample and zero-pad channels), pass out_dim= and stride= for "
        "an explicit shortcut, or merge='concat'."
    )


def _make_scale(spec: float | ModuleSpec, dim: int | None, data_format: DataFormat) -> nn.Module:
    if spec is None:
        return nn.Identity()
    if isinstance(spec, nn.Module):
        return spec
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return Scale(spec)
    _check_choice("scale", spec, (*SCALES, "<float>", "<module>", None))
    if spec == "learnable":
        return LearnableScale()
    if spec == "rezero":
        return ReZero()
    if dim is None:
        raise ValueError("scale='layerscale' needs the branch width: pass dim= (and out_dim= if it differs)")
    return LayerScale(dim, data_format=data_format)


def _make_merge(spec: ModuleSpec, s_dim: int | None, out_dim: int | None, data_format: DataFormat) -> nn.Module:
    if isinstance(spec, nn.Module):
        return spec
    _check_choice("merge", spec, MERGES)
    if spec == "add":
        return Add()
    if s_dim is None or out_dim is None:
        raise ValueError(f"merge={spec!r} has weights and needs the widths: pass dim= (and out_dim=)")
    if spec == "gate":
        return GatedMerge(out_dim, data_format)
    return ConcatFuse(s_dim, out_dim, out_dim, data_format)


def _make_activation(spec: ModuleSpec, inplace: bool) -> nn.Module:
    if spec is None:
        return nn.Identity()
    if isinstance(spec, nn.Module):
        return spec
    _check_choice("activation", spec, (*tuple(ACTIVATIONS), None))
    return ACTIVATIONS[spec](inplace)


def _scale_words(scale: nn.Module, fx: str) -> str:
    if isinstance(scale, Scale):
        return f"{scale.value:g}·{fx}"
    if isinstance(scale, ReZero):
        return f"rezero·{fx}"
    if isinstance(scale, LearnableScale):
        return f"α·{fx}"
    if isinstance(scale, LayerScale):
        return f"γ⊙{fx}"
    return fx if isinstance(scale, nn.Identity) else f"{type(scale).__name__}({fx})"


def _shortcut_words(shortcut: nn.Module) -> str:
    if isinstance(shortcut, nn.Identity):
        return "x"
    if isinstance(shortcut, Projection) or getattr(shortcut, "kind", None) == "projection":
        return "proj(x)"
    if isinstance(shortcut, PadShortcut) or getattr(shortcut, "kind", None) == "pad":
        return "pad(x)"
    return f"{type(shortcut).__name__}(x)"


def _merge_words(merge: nn.Module, sx: str, fx: str) -> str:
    if isinstance(merge, Add):
        return f"{sx} + {fx}"
    if isinstance(merge, ScaledAdd):
        return f"{merge.alpha:.4g}·{sx} + {fx}"
    if isinstance(merge, GatedMerge):
        return f"T⊙{fx} + (1-T)⊙{sx}, T = σ(W·{sx})"
    if isinstance(merge, ConcatFuse):
        return f"W·[{sx}; {fx}]"
    return f"{type(merge).__name__}({sx}, {fx})"
