"""Norms conditioned on a class or a vector, and the adaLN-zero residual block built on them.

ConditionalNorm   N(x) ⊙ (1 + γ(c)) + β(c): conditional BatchNorm (de Vries et al. 2017, the
                  class-conditional GANs) and adaptive LayerNorm (Peebles & Xie 2023, DiT)
AdaLNZero         y = x + g(c) ⊙ f(N(x) ⊙ (1 + γ(c)) + β(c)), with γ, β and the gate g from a
                  zero-initialised map of c: every block starts as the identity (DiT's adaLN-zero)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .layout import DataFormat, check_data_format
from .norm import make_norm


def per_sample(v: torch.Tensor, x: torch.Tensor, data_format: DataFormat) -> torch.Tensor:
    """Reshape per-sample channel values (B, C) to broadcast against x along its feature axis."""
    if data_format == "channels_first":
        return v.reshape(*v.shape, *(1,) * (x.ndim - 2))  # (B, C, 1, 1)
    return v.reshape(v.shape[0], *(1,) * (x.ndim - 2), v.shape[-1])  # (B, 1, ..., C)


class ConditionalNorm(nn.Module):
    """N(x) ⊙ (1 + γ(c)) + β(c), with (γ, β[, g]) from the condition c by a map that starts at zero.

    c is a class index (B,) when `num_classes` is set (an embedding per class), or a vector (B, cond_dim)
    when `cond_dim` is set (SiLU then Linear, as DiT). With neither it is the plain norm with its own
    affine weights. At init the map is zero: the plain norm, and with `gate=True` a zero gate.

    Args:
        dim: channels of x.
        num_classes: classes of a class condition (0: none).
        cond_dim: width of a vector condition (0: none).
        norm: the norm without its affine weights, a name in `NORMS`: "batch", "layer", "group", "rms".
        data_format: "channels_first" for (B, C, H, W), "channels_last" for (B, ..., D).
        gate: also produce the branch gate g(c) of adaLN-zero (see `modulate`).
    """

    def __init__(
        self,
        dim: int,
        num_classes: int = 0,
        cond_dim: int = 0,
        norm: str = "layer",
        data_format: DataFormat = "channels_last",
        gate: bool = False,
    ) -> None:
        super().__init__()
        if num_classes and cond_dim:
            raise ValueError("condition on a class (num_classes) or on a vector (cond_dim), not both")
        self.data_format, self.parts = check_data_format(data_format), 3 if gate else 2
        self.norm = make_norm(norm, dim, data_format)
        if num_classes or cond_dim:  # the condition supplies the affine part
            for m in self.norm.modules():
                for name in ("weight", "bias"):
                    if isinstance(getattr(m, name, None), nn.Parameter):
                        m.register_parameter(name, None)
                for flag in ("affine", "elementwise_affine"):
                    if hasattr(m, flag):
                        setattr(m, flag, False)
        if num_classes:
            self.map: nn.Module | None = nn.Embedding(num_classes, self.parts * dim)
        elif cond_dim:
            self.map = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, self.parts * dim))
        else:
            if gate:
                raise ValueError("gate=True needs a condition: pass num_classes or cond_dim")
            self.map = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.map is not None:
            for p in self.map.parameters():
                nn.init.zeros_(p)

    def modulate(self, x: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(N(x) ⊙ (1 + γ(c)) + β(c), g(c)); g is None without `gate`."""
        out = self.norm(x)
        if self.map is None:
            return out, None
        if c is None:
            raise ValueError("this norm is conditioned: pass the condition (class labels or vectors)")
        parts = [per_sample(p, x, self.data_format) for p in self.map(c).chunk(self.parts, dim=-1)]  # (B, C) each
        gate = parts[2] if self.parts == 3 else None
        return out * (1 + parts[0]) + parts[1], gate

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.modulate(x, c)[0]


class AdaLNZero(nn.Module):
    """y = x + g(c) ⊙ f(N(x) ⊙ (1 + γ(c)) + β(c)): DiT's adaLN-zero block (Peebles & Xie 2023, §3.2).

    γ, β and g come from the condition c by a zero-initialised map, so every block starts as y = x,
    as ReZero's, and the condition decides how much each block adds.

    Args:
        wrap: the branch f; extra arguments of `forward` go to it.
        dim: channels of x.
        num_classes: classes of a class condition (or use `cond_dim`).
        cond_dim: width of a vector condition (a time or class embedding, as DiT).
        norm: "layer" (DiT) or any name in `NORMS`.
        data_format: "channels_last" for (B, ..., D), "channels_first" for (B, C, H, W).
    """

    def __init__(
        self,
        wrap: nn.Module,
        dim: int,
        num_classes: int = 0,
        cond_dim: int = 0,
        norm: str = "layer",
        data_format: DataFormat = "channels_last",
    ) -> None:
        super().__init__()
        if not (num_classes or cond_dim):
            raise ValueError("AdaLNZero needs a condition: pass num_classes or cond_dim")
        self.wrap = wrap
        self.norm = ConditionalNorm(dim, num_classes, cond_dim, norm, data_format, gate=True)

    def forward(self, x: torch.Tensor, c: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        h, gate = self.norm.modulate(x, c)
        return x + gate * self.wrap(h, *args, **kwargs)

    def formula(self) -> str:
        return "y = x + g(c)⊙f(norm(x)⊙(1+γ(c)) + β(c))"


__all__ = ["AdaLNZero", "ConditionalNorm"]
