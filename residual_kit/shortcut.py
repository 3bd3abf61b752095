"""Shortcut paths: identity, projection (option B) and zero-padding (option A), He et al. 2015 §3.3."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedParameter

from .layout import DataFormat, check_data_format
from .norm import NormSpec, make_norm
from .registry import Registry
from .slot import Slot


class Projection(nn.Sequential):
    """Learned shortcut W_s x that matches the branch's shape.

    Channels-first features get a strided 1x1 conv and a norm (torchvision's `downsample`, same state
    dict keys `0.*`, `1.*`); sequences get a Linear (key `0.*`).

    Args:
        in_dim: channels (or features) of x.
        out_dim: channels (or features) of the branch output.
        stride: spatial subsampling of the branch (conv features only).
        data_format: "channels_first" for (B, C, H, W), "channels_last" for (B, ..., D).
        norm: norm after the 1x1 conv (conv features only); "batch" as in ResNet.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        stride: int = 1,
        data_format: DataFormat = "channels_first",
        norm: NormSpec = "batch",
    ) -> None:
        check_data_format(data_format)
        if data_format == "channels_first":
            conv = nn.Conv2d(in_dim, out_dim, 1, stride=stride, bias=False)
            super().__init__(conv, make_norm(norm, out_dim, data_format))
        else:
            if stride != 1:
                raise ValueError("a channels_last projection cannot subsample: stride must be 1")
            super().__init__(nn.Linear(in_dim, out_dim))

    def formula(self, x: str) -> str:
        return f"proj({x})"


class PadShortcut(nn.Module):
    """Parameter-free option A: subsample by `stride`, then append zero channels up to `out_dim`.

    Args:
        out_dim: channels of the branch output (>= channels of x).
        stride: spatial subsampling of the branch.
        data_format: "channels_first" for (B, C, H, W), "channels_last" for (B, ..., D).
    """

    def __init__(self, out_dim: int, stride: int = 1, data_format: DataFormat = "channels_first") -> None:
        super().__init__()
        self.out_dim, self.stride = out_dim, stride
        self.data_format = check_data_format(data_format)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.data_format == "channels_first":
            x = x[:, :, :: self.stride, :: self.stride]  # (B, C, H/s, W/s)
            missing = self.out_dim - x.shape[1]
            return F.pad(x, (0, 0, 0, 0, 0, missing))  # (B, out_dim, H/s, W/s)
        missing = self.out_dim - x.shape[-1]
        return F.pad(x, (0, missing))  # (B, ..., out_dim)

    def formula(self, x: str) -> str:
        return f"pad({x})"

    def extra_repr(self) -> str:
        return f"out_dim={self.out_dim}, stride={self.stride}, data_format={self.data_format}"


class LazyPointwise(LazyModuleMixin, nn.Module):
    """A 1x1 conv (channels_first, no bias) or a Linear (channels_last) whose sizes are given later.

    Like `nn.LazyLinear`, its weights exist from construction as `UninitializedParameter`s and are
    materialised in place by `materialize(in_dim, out_dim, stride)`, so an optimiser built before that
    holds (and trains) them and `load_state_dict` before that loads them, taking the sizes from the file.
    """

    cls_to_become = None

    def __init__(self, data_format: DataFormat) -> None:
        super().__init__()
        self.data_format, self.stride = check_data_format(data_format), 1
        self.weight = UninitializedParameter()
        self.bias = UninitializedParameter() if data_format == "channels_last" else None

    def initialize_parameters(self, *args: Any) -> None:
        """Nothing to read from this module's own input: `InferredShortcut` materialises it first."""

    def materialize(self, in_dim: int, out_dim: int, stride: int, like: torch.Tensor) -> None:
        self.stride = stride
        shape = (out_dim, in_dim, 1, 1) if self.data_format == "channels_first" else (out_dim, in_dim)
        if not self.has_uninitialized_params():  # loaded from a state dict: the sizes must agree
            if tuple(self.weight.shape) != shape:
                raise ValueError(
                    f"the loaded shortcut weight is {tuple(self.weight.shape)} but this branch needs {shape}: "
                    "the state dict is of a Residual with other widths"
                )
            return
        reference = nn.Conv2d(in_dim, out_dim, 1, bias=False) if len(shape) == 4 else nn.Linear(in_dim, out_dim)
        with torch.no_grad():  # the init of torch's own layer, copied into the parameters we already hold
            self.weight.materialize(shape, device=like.device, dtype=like.dtype)
            self.weight.copy_(reference.weight)
            if self.bias is not None:
                self.bias.materialize((out_dim,), device=like.device, dtype=like.dtype)
                self.bias.copy_(reference.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.data_format == "channels_first":
            return F.conv2d(x, self.weight, stride=self.stride)  # (B, out_dim, H/s, W/s)
        return F.linear(x, self.weight, self.bias)  # (B, ..., out_dim)


class InferredShortcut(nn.Module):
    """A projection or pad shortcut whose sizes are read from the first forward of the branch.

    `Residual` calls `infer(x, branch_out)` through a forward hook on the wrapped module. A projection's
    parameters exist from construction (torch's lazy parameters, as in `nn.LazyLinear`): an optimiser
    built before the first call trains them, and `load_state_dict` before it loads them. Its keys are
    `shortcut.path.0.weight` (and `shortcut.path.1.*`, the BatchNorm of conv features). `torch.compile`
    and `torch.export` need the sizes: run one batch first.
    """

    def __init__(self, kind: str, data_format: DataFormat, norm: NormSpec = "batch") -> None:
        super().__init__()
        self.kind, self.data_format = kind, check_data_format(data_format)
        self.inferred = False
        if kind == "pad":
            self.path: nn.Module = PadShortcut(0, 1, data_format)
        elif data_format == "channels_first":
            if norm not in ("batch", None):
                raise ValueError(f"an inferred projection takes norm='batch' or None, got {norm!r}")
            bn = [nn.LazyBatchNorm2d()] if norm == "batch" else []
            self.path = nn.Sequential(LazyPointwise(data_format), *bn)
        else:
            self.path = nn.Sequential(LazyPointwise(data_format))

    def infer(self, x: torch.Tensor, out: torch.Tensor) -> None:
        if torch.compiler.is_compiling():
            raise RuntimeError(
                "Residual's inferred shortcut reads its sizes on the first call: run one batch before "
                "torch.compile / torch.export, or give dim and out_dim"
            )
        channels_first = self.data_format == "channels_first"
        in_dim, out_dim = (x.shape[1], out.shape[1]) if channels_first else (x.shape[-1], out.shape[-1])
        stride = -(-x.shape[-1] // out.shape[-1]) if channels_first and out.ndim > 2 else 1  # ceil
        if self.kind == "pad":
            self.path.out_dim, self.path.stride = out_dim, stride
        else:
            self.path[0].materialize(in_dim, out_dim, stride, like=x)
            if len(self.path) > 1 and self.path[1].has_uninitialized_params():
                self.path[1].initialize_parameters(out)  # BN over the branch's channels
                self.path[1].to(device=x.device, dtype=x.dtype)
        self.inferred = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.inferred:
            raise RuntimeError(
                "Residual's inferred shortcut has no sizes yet: run one batch first (its sizes come from the "
                "branch's first output), or give dim and out_dim"
            )
        return self.path(x)

    def formula(self, x: str) -> str:
        return f"{'pad' if self.kind == 'pad' else 'proj'}({x})"

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, inferred={self.inferred}"


def _projection(slot: Slot) -> nn.Module:
    if slot.dim is None or slot.out_dim is None:
        return InferredShortcut("projection", slot.data_format)
    return Projection(slot.dim, slot.out_dim, slot.stride, slot.data_format)


def _pad(slot: Slot) -> nn.Module:
    if slot.out_dim is None:
        return InferredShortcut("pad", slot.data_format)
    return PadShortcut(slot.out_dim, slot.stride, slot.data_format)


SHORTCUTS: Registry = Registry(
    "shortcut", {"identity": lambda slot: nn.Identity(), "projection": _projection, "pad": _pad}
)
"""Shortcuts by name: builder(slot) -> module; a width left None is read from the branch's first output
(`InferredShortcut`)."""
