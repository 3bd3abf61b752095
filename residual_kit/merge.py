"""How the shortcut s and the branch b are combined: s + b by default, or a literature alternative."""

from __future__ import annotations

import torch
from torch import nn

from .layout import DataFormat, check_data_format, feature_axis
from .registry import Registry
from .slot import Slot


class Add(nn.Module):
    """y = s + b, the residual merge of He et al. 2015.

    Args:
        inplace: write the sum into b, as torchvision's `out += identity` (one allocation less per
            block). Only for a builder that knows its branch: b must be a fresh tensor that the branch's
            backward does not need (it ends in a conv, a Linear or a norm), never x or a view of it.
    """

    fresh = True  # the output is a new tensor (or the branch's own), never the caller's x

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, s: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return b.add_(s) if self.inplace else s + b

    def formula(self, sx: str, fx: str) -> str:
        return f"{sx} + {fx}"

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class ScaledAdd(Add):
    """y = alpha * s + b: DeepNet's up-weighted shortcut (use with post-norm, see `deepnorm_alpha`)."""

    def __init__(self, alpha: float, inplace: bool = False) -> None:
        super().__init__(inplace)
        self.alpha = float(alpha)

    def forward(self, s: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return b.add_(s, alpha=self.alpha) if self.inplace else self.alpha * s + b

    def formula(self, sx: str, fx: str) -> str:
        return f"{self.alpha:.4g}·{sx} + {fx}"

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:.4g}" + (", inplace=True" if self.inplace else "")


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

    connects = True  # the gate keeps its carry bias through a model-wide init (residual_kit.optim)

    def __init__(self, dim: int, data_format: DataFormat = "channels_last", gate_bias: float = -1.0) -> None:
        super().__init__()
        self.data_format = check_data_format(data_format)
        self.gate = _pointwise(dim, dim, data_format)
        self.gate_bias = gate_bias
        nn.init.constant_(self.gate.bias, gate_bias)

    fresh = True

    def forward(self, s: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        t = torch.sigmoid(self.gate(s))
        return t * b + (1 - t) * s

    def formula(self, sx: str, fx: str) -> str:
        return f"T⊙{fx} + (1-T)⊙{sx}, T = σ(W·{sx})"

    def extra_repr(self) -> str:
        return f"gate_bias={self.gate_bias}"


class ConcatFuse(nn.Module):
    """Concat-then-fuse (multi-scale fusion, as in HRNet/DenseNet transitions): y = W [s; b].

    Args:
        dim: channels of s; None: read on the first call (a lazy 1x1 conv or Linear, as `nn.LazyLinear`).
        branch_dim: channels of b (defaults to `dim`).
        out_dim: channels of y (defaults to `branch_dim`).
        data_format: where the channels are; a 1x1 conv fuses channels-first features, a Linear sequences.
    """

    def __init__(
        self,
        dim: int | None,
        branch_dim: int | None = None,
        out_dim: int | None = None,
        data_format: DataFormat = "channels_last",
    ) -> None:
        super().__init__()
        branch_dim = branch_dim or dim
        self.axis = feature_axis(check_data_format(data_format))
        if dim is None:
            lazy = nn.LazyConv2d if data_format == "channels_first" else nn.LazyLinear
            self.fuse = lazy(out_dim or branch_dim, **({"kernel_size": 1} if data_format == "channels_first" else {}))
        else:
            self.fuse = _pointwise(dim + branch_dim, out_dim or branch_dim, data_format)

    fresh = True
    reshapes = True  # s and b may differ in width

    def forward(self, s: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([s, b], dim=self.axis))

    def formula(self, sx: str, fx: str) -> str:
        return f"W·[{sx}; {fx}]"


class NoShortcut(nn.Module):
    """y = b: the branch alone, with no shortcut: a residual block's plain twin (He et al. 2015's plain nets)
    with every other option the same."""

    fresh = False
    reshapes = True  # s is not used, whatever its shape

    def forward(self, s: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return b

    def formula(self, sx: str, fx: str) -> str:
        return fx


class OrthogonalAdd(nn.Module):
    """y = s + b_⊥, b_⊥ = b - (⟨b, s⟩ / (⟨s, s⟩ + ε)) s: only the part of the branch orthogonal to the stream is
    added, at every position over the channels (Oh et al. 2025, "Revisiting Residual Connections: Orthogonal
    Updates", 2505.11881; x-transformers' `orthog_residual`).

    Args:
        data_format: where the channels are.
        eps: ε, keeping a zero stream finite.
    """

    fresh = True

    def __init__(self, data_format: DataFormat = "channels_last", eps: float = 1e-6) -> None:
        super().__init__()
        self.axis, self.eps = feature_axis(check_data_format(data_format)), eps

    def forward(self, s: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        along = (b * s).sum(self.axis, keepdim=True) / ((s * s).sum(self.axis, keepdim=True) + self.eps)
        return s + b - along * s

    def formula(self, sx: str, fx: str) -> str:
        return f"{sx} + {fx} - (⟨{fx},{sx}⟩/‖{sx}‖²)·{sx}"


class GRUGate(nn.Module):
    """y = GRUCell(input b, hidden s): the stream is a GRU's state and the branch its input, so update and reset
    gates decide how much of each reaches the next layer (x-transformers' `gate_residual`, after GTrXL, Parisotto
    et al. 2020).

    Args:
        dim: channels of s and b.
        data_format: where the channels are.
    """

    connects = True  # the gates start as torch's GRUCell and keep that init through a model-wide one

    fresh = True

    def __init__(self, dim: int, data_format: DataFormat = "channels_last") -> None:
        super().__init__()
        self.axis = feature_axis(check_data_format(data_format))
        self.gru = nn.GRUCell(dim, dim)

    def forward(self, s: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        s_, b_ = s.movedim(self.axis, -1), b.movedim(self.axis, -1)
        y = self.gru(b_.reshape(-1, b_.shape[-1]), s_.reshape(-1, s_.shape[-1]))
        return y.view(s_.shape).movedim(-1, self.axis)

    def formula(self, sx: str, fx: str) -> str:
        return f"GRU({fx}; {sx})"


def _laurel(form: str, slot: Slot) -> nn.Module:
    from .laurel import LaurelLR, LaurelRW

    if form == "rw":
        return LaurelRW()
    if slot.dim is None or slot.dim != slot.branch_dim:
        raise ValueError("merge='laurel_lr' maps the shortcut to the branch's width: it needs dim= equal to out_dim")
    return LaurelLR(slot.dim, data_format=slot.data_format)


def _branch_width(slot: Slot, name: str) -> int:
    if slot.branch_dim is None:
        raise ValueError(f"merge={name!r} has weights and needs the widths: pass dim= (and out_dim= if f changes it)")
    return slot.branch_dim


MERGES: Registry = Registry(
    "merge",
    {
        "add": lambda slot: Add(),
        "none": lambda slot: NoShortcut(),
        "laurel_rw": lambda slot: _laurel("rw", slot),
        "laurel_lr": lambda slot: _laurel("lr", slot),
        "gate": lambda slot: GatedMerge(_branch_width(slot, "gate"), slot.data_format),
        "concat": lambda slot: ConcatFuse(slot.dim, _branch_width(slot, "concat"), data_format=slot.data_format),
        "orthogonal": lambda slot: OrthogonalAdd(slot.data_format),
        "gru": lambda slot: GRUGate(_branch_width(slot, "gru"), slot.data_format),
    },
)
"""Merges by name: builder(slot) -> module called as merge(s, b); `slot.dim` is the width of s and
`slot.branch_dim` that of b. Set `fresh = True` on a merge class whose output is a new tensor, so that the
activation after it may run in place; `reshapes = True` if s and b may differ in shape."""
