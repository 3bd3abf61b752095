"""`Slot`: what every slot builder is told about the block it builds for (one signature for every registry)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .layout import DataFormat, check_data_format


@dataclass(frozen=True)
class Slot:
    """The block around a slot: a builder of `NORMS`, `SHORTCUTS`, `SCALES`, `MERGES` or `ACTIVATIONS` is
    called as `builder(slot)` and reads what it needs.

    Args:
        dim: width of the tensor the slot acts on (channels or features); None where unknown.
        out_dim: width of the branch output f(x), where it differs from `dim`.
        stride: spatial subsampling done by the branch (conv features).
        data_format: "channels_last" for (B, ..., D), "channels_first" for (B, C, H, W).
        depth: layers of the stack the block belongs to, for depth-aware slots (DeepNet's α, CaiT's
            LayerScale ε); None where unknown.
    """

    dim: int | None = None
    out_dim: int | None = None
    stride: int = 1
    data_format: DataFormat = "channels_last"
    depth: int | None = None

    def __post_init__(self) -> None:
        check_data_format(self.data_format)
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        if self.depth is not None and self.depth < 1:
            raise ValueError(f"depth must be >= 1 (the layers of the stack), got {self.depth}")

    @property
    def branch_dim(self) -> int | None:
        """Width of f(x): `out_dim`, or `dim` when the branch keeps the width."""
        return self.out_dim if self.out_dim is not None else self.dim

    def after_branch(self) -> Slot:
        """The slot of a module that acts on f(x) (post-branch norm, scale, post-norm)."""
        return replace(self, dim=self.branch_dim, out_dim=None, stride=1)


__all__ = ["Slot"]
