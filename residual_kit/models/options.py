"""`ResidualOptions`: the residual options every model takes, under `Residual`'s names and meanings."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import partial
from typing import Any, Literal

from torch import nn

from ..drop_path import drop_path_rates
from ..init import INITS, initialise
from ..merge import MERGES
from ..norm import NORMS, DepthScaledNorm
from ..residual import PLACEMENTS, Placement, Residual
from ..scale import SCALES

MIX_LN_POST = 0.25  # Mix-LN's share of post-norm layers (Li et al. 2024, alpha)

ModelPlacement = Placement | Literal["mix", "lns"]
"""A model's placement: every `Residual` placement, "mix" (Mix-LN) across its layers, or "lns" (pre-norm with
LayerNorm Scaling); one type for every config."""
MODEL_PLACEMENTS = (*PLACEMENTS, "mix", "lns")


@dataclass(kw_only=True)
class ResidualOptions:
    """The residual options of every model's config (`ResNetConfig`, `GPTConfig`, `LSTMConfig`, `GANConfig`).

    Each means what it means in `Residual`, for every residual block of the model, in every stack design;
    a model that cannot honour one refuses it when it is built.

    Args:
        placement: where the norm sits in every block: None, "pre", "post", "sandwich" or "deepnorm"
            (DeepNet's α·x and β-scaled init, N the model's layers), or "mix" (Mix-LN, Li et al. 2024: "post"
            in the first quarter of the layers, floored, at least one; "pre" in the rest), or "lns" (LayerNorm
            Scaling, Sun et al. 2025, 2502.05795: pre-norm whose norm output in layer l, from 1, is scaled by
            1/sqrt(l): y = x + f(LN(x)/sqrt(l))).
        norm: the norm that `placement` puts in, a name in `NORMS`.
        scale: branch scale of every block: None, a float, or a name in `SCALES` ("learnable", "rezero",
            "layerscale" with CaiT's ε for the model's depth).
        drop_path: stochastic depth of the deepest block, rising linearly from 0 at the first (Huang et al. 2016).
        merge: how shortcut and branch meet, a name in `MERGES`.
        init: depth-aware initialisation once the model is built, a name in `INITS`: "default" (torch's and the
            model's own), "zero_last", "gpt2", "fixup".
    """

    placement: ModelPlacement | None = None
    norm: str = "layer"
    scale: float | str | None = None
    drop_path: float = 0.0
    merge: str = "add"
    init: str = "default"

    def check_residual_options(self) -> None:
        """Refuse an unknown name, a rate outside [0, 1], or a norm that no placement puts in, in one line."""
        if self.placement not in MODEL_PLACEMENTS:
            raise ValueError(f"placement={self.placement!r} is not one of {MODEL_PLACEMENTS}")
        NORMS.check(self.norm)
        if isinstance(self.scale, str):
            SCALES.check(self.scale)
        MERGES.check(self.merge)
        INITS.check(self.init)
        drop_path_rates(self.drop_path, 1)
        if self.placement is None and self.norm != _default(self, "norm"):
            raise ValueError(f"norm={self.norm!r} has no place: placement=None puts no norm in; set a placement")

    def changed_residual_options(self) -> list[str]:
        """The residual options set to other than this model's defaults (what a plain net must refuse)."""
        return [f.name for f in fields(ResidualOptions) if getattr(self, f.name) != _default(self, f.name)]

    def refuse_residual_options(self, why: str) -> None:
        """One line naming a residual option that is set although the model has no residual block to take it."""
        changed = self.changed_residual_options()
        if changed:
            raise ValueError(f"{changed[0]}={getattr(self, changed[0])!r} cannot apply: {why}")

    def residual_block(self, wrap: nn.Module, drop_path: float, depth: int, layer: int = 0, **block: Any) -> Residual:
        """`wrap` as the residual block of layer `layer` of `depth`, with these options; `block` gives its widths
        and any model-fixed slot."""
        placement = self.placement_at(layer, depth)
        norm: Any = self.norm
        if self.placement == "lns":
            fmt = block.get("data_format", "channels_last")
            norm = partial(DepthScaledNorm, self.norm, 1 / math.sqrt(layer + 1), data_format=fmt)
        options = {"norm": norm, "placement": placement, "scale": self.scale, "merge": self.merge}
        return Residual(wrap, **{**options, **block}, drop_path=drop_path, depth=depth)

    def placement_at(self, layer: int, depth: int) -> Placement | None:
        """The placement of layer `layer` of `depth`: Mix-LN's "post" in the first ⌊depth/4⌋ layers (at least
        one), "pre" after it; "pre" for LayerNorm Scaling."""
        if self.placement == "lns":
            return "pre"
        if self.placement != "mix":
            return self.placement
        return "post" if layer < max(1, math.floor(MIX_LN_POST * depth)) else "pre"

    def final_norm(self) -> str | None:
        """The norm a stack of these blocks ends with: `norm` where the residual stream leaves it unnormalised
        (pre-norm and its kin), None where the last block already normalised it (post-norm, DeepNorm) or no
        block has a norm."""
        return self.norm if self.placement in ("pre", "sandwich", "mix", "lns") else None

    def drop_path_rates(self, blocks: int) -> list[float]:
        """The drop-path rate of each of `blocks` blocks, in depth order."""
        return drop_path_rates(self.drop_path, blocks)

    def initialise(self, model: nn.Module) -> nn.Module:
        """Apply `init` to the built model (after the model's own initialisation)."""
        initialise(model, self.init)
        return model


def _default(options: ResidualOptions, name: str) -> Any:
    return next(f.default for f in fields(options) if f.name == name)


__all__ = ["MODEL_PLACEMENTS", "ModelPlacement", "ResidualOptions"]
