"""How the shortcut s and the branch b are combined: s + b by default, or a literature alternative."""

from __future__ import annotations

import torch
from torch import nn

from .layout import DataFormat, check_data_format, feature_axis


class Add(nn.Module):
    """y = s + b, the residual merge of He et al. 2015."""

    def forward(self, s: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return s + b


class ScaledAdd(nn.Module):
    """y = alpha * s + b: DeepNet's up-weighted shortcut (use with post-norm, see `deepnorm_alpha`)."""

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, s: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.alpha * s + b

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:.4g}"


def _pointwise(in_dim: int, out_dim: int, data_format: DataFormat) -> nn.Module:
    if data_format == "channels_first":
        return nn.Conv2d(in_dim, out_dim, 1)
    return nn.Linear(in_dim, out_dim)


class GatedMerge(nn.Module):
    """Highway merge (Srivastava et al. 2015): y = T(s) * b + (1 - T(s)) * s, T = sigmoid(W s + c).

    Args:
        dim: channels of s and b.
        data_format: where the channels are.
        gate_bias: initial c; negative values start the block near the carry path s.
    """

    def __init__(self, dim: int, data_format: DataFormat = "channels_last", gate_bias: float = -1.0) -> None:
        super().__init__()
        self.data_format = check_data_format(data_format)
        self.gate = _pointwise(dim, dim, data_format)
        self.gate_bias = gate_bias
        nn.init.constant_(self.gate.bias, gate_bias)

    def forward(self, s: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        t = torch.sigmoid(self.gate(s))
        return t * b + (1 - t) * s

    def extra_repr(self) -> str:
        return f"gate_bias={self.gate_bias}"


class ConcatFuse(nn.Module):
    """Concat-then-fuse (multi-scale fusion, as in HRNet/DenseNet transitions): y = W [s; b].

    Args:
        dim: channels of s.
        branch_dim: channels of b (defaults to `dim`).
        out_dim: channels of y (defaults to `branch_dim`).
        data_format: where the channels are; a 1x1 conv fuses channels-first features, a Linear sequences.
    """

    def __init__(
        self,
        dim: int,
        branch_dim: int | None = None,
        out_dim: int | None = None,
        data_format: DataFormat = "channels_last",
    ) -> None:
        super().__init__()
        branch_dim = branch_dim or dim
        self.axis = feature_axis(check_data_format(data_format))
        self.fuse = _pointwise(dim + branch_dim, out_dim or branch_dim, data_format)

    def forward(self, s: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([s, b], dim=self.axis))
