"""Shortcut paths: identity, projection (option B) and zero-padding (option A), He et al. 2015 §3.3."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layout import DataFormat, check_data_format
from .norm import NormSpec, make_norm


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

    def extra_repr(self) -> str:
        return f"out_dim={self.out_dim}, stride={self.stride}, data_format={self.data_format}"


class InferredShortcut(nn.Module):
    """A projection or pad shortcut whose sizes are read from the first forward of the branch.

    `Residual` calls `infer(x, branch_out)` through a forward hook on the wrapped module; run one
    forward before building the optimiser or calling `torch.compile`, as with torch's lazy modules.
    Until then its state dict is empty; afterwards its keys are `shortcut.path.*`.
    """

    def __init__(self, kind: str, data_format: DataFormat, norm: NormSpec = "batch") -> None:
        super().__init__()
        self.kind, self.data_format, self.norm = kind, check_data_format(data_format), norm
        self.path: nn.Module | None = None

    def infer(self, x: torch.Tensor, out: torch.Tensor) -> None:
        channels_first = self.data_format == "channels_first"
        in_dim, out_dim = (x.shape[1], out.shape[1]) if channels_first else (x.shape[-1], out.shape[-1])
        stride = -(-x.shape[-1] // out.shape[-1]) if channels_first and out.ndim > 2 else 1  # ceil
        if self.kind == "pad":
            self.path = PadShortcut(out_dim, stride, self.data_format)
        else:
            self.path = Projection(in_dim, out_dim, stride, self.data_format, self.norm)
            self.path.to(device=x.device, dtype=x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.path is None:
            raise RuntimeError("InferredShortcut used before its sizes were inferred: run the Residual once")
        return self.path(x)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, inferred={self.path is not None}"
