"""The arena's designs: each a set of GPT options, the paper it comes from and what that paper reports.

Every design has its paper's initialisation: GPT-2's (N(0, 0.02), residual projections by 1/sqrt(2 layers)) where
the paper keeps the standard init (the pre-norm baseline among them), DeepNet's beta, Fixup's zeros, CaiT's
LayerScale epsilon for the depth, the zero-started branches of ReZero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn

from residual_kit.registry import Registry
from residual_kit.stack import STACKS

FAMILIES = ("gpt", "lstm", "gru")
"""The arena's model families: the GPT, and the byte-level recurrent language model with LSTM or GRU layers."""
Family = Literal["gpt", "lstm", "gru"]
NetFamily = Literal["gpt", "lstm", "gru", "gan"]
"""Where a design's options go: the arena's families and the GAN (`GANConfig`)."""
RECURRENT = ("lstm", "gru")


def left_out(families: tuple[str, ...], why: str) -> dict[str, str]:
    return dict.fromkeys(families, why)


@dataclass(frozen=True)
class Design:
    """Residual options (fields of `GPTConfig`, `RecurrentLMConfig` and, for a block-level design, `GANConfig`), the
    paper, and what the paper reports for it (its own scale and budget).

    Args:
        options: the residual options.
        paper: the paper, or where the design comes from.
        reported: what the paper reports.
        init: the GPT's initialisation: "gpt2" (GPT-2's, the standard one) or the paper's own. The recurrent
            families and the GAN keep their layers' standard init in place of GPT-2's, which has no counterpart
            there, and take a paper's own.
        left_out: by family, why the design has no faithful form there. A stack design has none in the GAN, whose
            generator's blocks change resolution and width and so form no stack of one width.
    """

    options: dict[str, Any]
    paper: str
    reported: str
    init: str = "gpt2"
    left_out: dict[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = field(default_factory=tuple)

    def gpt_options(self) -> dict[str, Any]:
        return {"init": self.init, **self.options}

    def why_not(self, family: NetFamily) -> str | None:
        """Why the design has no faithful form in `family`; None where it has one."""
        if family == "gan" and "stack" in self.options:
            return "the generator's blocks change resolution and width, so they form no stack of one width"
        return self.left_out.get(family)

    def applies(self, family: NetFamily) -> bool:
        return self.why_not(family) is None

    def net_options(self, family: NetFamily) -> dict[str, Any]:
        """The options of this design's network in `family`: `GPTConfig`'s, `RecurrentLMConfig`'s (with its `cell`)
        or `GANConfig`'s; a one-line error where the design has no faithful form there."""
        if family not in (*FAMILIES, "gan"):
            raise ValueError(f"family={family!r} is not one of {(*FAMILIES, 'gan')}")
        if (why := self.why_not(family)) is not None:
            raise ValueError(f"{self.paper} has no faithful form in the {family} family: {why}")
        if family == "gpt":
            return self.gpt_options()
        init = "default" if self.init == "gpt2" else self.init
        return {**self.options, "init": init} | ({"cell": family} if family in RECURRENT else {})


DESIGNS: Registry[Design] = Registry(
    "design",
    {
        "pre": Design({"placement": "pre"}, "GPT-2 (Radford et al. 2019)", "the baseline"),
        "post": Design(
            {"placement": "post"},
            "Vaswani et al. 2017; Xiong et al. 2020",
            "needs a warm-up and trails pre-norm as depth grows (Xiong et al.)",
        ),
        "sandwich": Design(
            {"placement": "sandwich"},
            "Peri-LN (Kim et al. 2025; CogView's sandwich)",
            "lower loss and steadier training than pre-norm, 400M-3.2B",
        ),
        "mix-ln": Design(
            {"placement": "mix"},
            "Mix-LN (Li et al. 2024)",
            "lower perplexity than pre- and post-norm, 70M-7B; deeper layers contribute more",
        ),
        "lns": Design(
            {"placement": "lns"},
            "LayerNorm Scaling (Sun et al. 2025, 2502.05795)",
            "deeper layers contribute again; lower perplexity than pre-norm, 130M-1B",
        ),
        "completep": Design(
            {"placement": "pre", "scale": "completep"},
            "CompleteP (Dey et al. 2025, 2505.01618), alpha = 1",
            "hyperparameters transfer across depth; 12-34% less compute than muP at 1.5B",
            init="default",
        ),
        "deepnorm": Design(
            {"placement": "deepnorm"},
            "DeepNet (Wang et al. 2022)",
            "trains 1,000-layer post-norm Transformers; better BLEU than post-norm",
            init="default",
            left_out=left_out(
                (*RECURRENT, "gan"), "its beta is defined on a Transformer's value, output and MLP projections"
            ),
        ),
        "dyt": Design(
            {"placement": "pre", "norm": "dyt"},
            "DyT (Zhu et al. 2025)",
            "matches normalised Transformers with tanh in place of every norm",
        ),
        "derf": Design(
            {"placement": "pre", "norm": "derf"},
            "Derf (Chen et al. 2025, 2512.10938)",
            "beats LayerNorm, RMSNorm and DyT in vision, speech and DNA models",
        ),
        "rezero": Design(
            {"placement": None, "scale": "rezero"},
            "ReZero (Bachlechner et al. 2020)",
            "converges faster than pre- and post-norm",
        ),
        "layerscale": Design(
            {"placement": "pre", "scale": "layerscale"},
            "LayerScale (CaiT, Touvron et al. 2021)",
            "lets deeper ViTs train and improve",
        ),
        "fixup": Design(
            {"placement": None, "scale": "learnable"},
            "Fixup (Zhang et al. 2019)",
            "trains without normalisation, matching normalised nets",
            init="fixup",
            left_out=left_out(RECURRENT, "its init zeroes a branch's last weight layer; a recurrent layer has none")
            | {"gan": "it trains without norms; the generator's blocks keep the batch norms that carry the labels"},
        ),
        "laurel": Design(
            {"placement": "pre", "merge": "laurel_rw"},
            "LAuReL-RW (Menghani et al. 2024)",
            "ResNet-50: 60% of an extra layer's gain for +0.003% parameters",
        ),
        "laurel-lr": Design(
            {"placement": "pre", "merge": "laurel_lr"},
            "LAuReL-LR (Menghani et al. 2024)",
            "with RW, matches an extra layer with 2.6x fewer added parameters",
        ),
        "orthogonal": Design(
            {"placement": "pre", "merge": "orthogonal"},
            "orthogonal residual update (Oh et al. 2025, 2505.11881)",
            "ViT-B on ImageNet-1k: +3.78 points top-1",
        ),
        "gru-gate": Design(
            {"placement": "pre", "merge": "gru"},
            "GRU-gated residual (GTrXL, Parisotto et al. 2020; x-transformers)",
            "stable training of Transformers as reinforcement-learning memory",
        ),
        "hyper": Design(
            {"stack": "hyper"},
            "hyper-connections, dynamic (Zhu et al. 2024)",
            "lower loss than pre-norm in 1B-7B language models, faster convergence",
        ),
        "hyper-static": Design(
            {"stack": "hyper", "stack_options": {"dynamic": False}},
            "hyper-connections, static (Zhu et al. 2024)",
            "a little behind the dynamic form",
        ),
        "mhc": Design(
            {"stack": "mhc"},
            "mHC (DeepSeek-AI 2025)",
            "hyper-connections' gains with stable training at 27B, where hyper-connections spike",
        ),
        "mhc-lite": Design(
            {"stack": "mhc_lite"},
            "mHC-lite (2601.05732)",
            "mHC's loss with exact doubly stochastic mixing and no Sinkhorn iterations",
        ),
        "frac": Design(
            {"stack": "frac"},
            "Frac-connections (Zhu et al. 2025)",
            "beat residual connections up to a 7B MoE trained on 3T tokens, at no extra width",
        ),
        "value-residual": Design(
            {"placement": "pre", "value_residual": "learned"},
            "ResFormer (Zhou et al. 2024)",
            "the same loss with about 16% fewer parameters or 20% less data",
            left_out=left_out((*RECURRENT, "gan"), "it mixes attention's values; the network has no attention"),
        ),
        "denseformer": Design(
            {"stack": "dense"},
            "DenseFormer (Pagliardini et al. 2024)",
            "a 48-layer DenseFormer matches a 72-layer Transformer's perplexity",
        ),
        "denseformer-2x2": Design(
            {"stack": "dense", "stack_options": {"dilation": 2, "period": 2}},
            "DenseFormer 2x2 (Pagliardini et al. 2024)",
            "most of the gain at a lower cost",
        ),
        "x0": Design(
            {"stack": "x0"},
            "embedding re-injected, x = a x + b x0 (modded-nanogpt records)",
            "part of the speedrun records' GPT-2 (124M) time",
        ),
        "unet": Design(
            {"stack": "unet"},
            "U-Net skips over depth (modded-nanogpt records)",
            "part of the speedrun records' GPT-2 (124M) time",
        ),
        "backout": Design(
            {"stack": "backout"},
            "backout (modded-nanogpt record, PR #140)",
            "part of a speedrun record (140.7 s on the short track)",
        ),
        "mudd-r": Design(
            {"stack": "mudd"},
            "MUDDFormer, residual way only (Xiao et al. 2025)",
            "a part of the four-way design's gain (the four-way MUDDPythia-2.8B matches Pythia-6.9B)",
        ),
        "attnres": Design(
            {"stack": "attnres", "stack_options": {"blocks": 8}},
            "Block Attention Residuals (Kimi Team 2026)",
            "the loss of a baseline trained with 1.25x the compute",
        ),
        "attnres-full": Design(
            {"stack": "attnres"},
            "Full Attention Residuals (Kimi Team 2026)",
            "a little ahead of the block form, at more memory",
        ),
        "resi-dual": Design(
            {"stack": "resi_dual", "placement": None},
            "ResiDual (Xie et al. 2023)",
            "better BLEU than pre- and post-norm from 6 to 18 layers",
        ),
        "canon": Design(
            {"stack": "canon"},
            "Canon layers A and C (Allen-Zhu 2025, 2512.17351)",
            "reasoning depth doubled on synthetic tasks; gains kept at 1.3B",
        ),
    },
    home="tasks.lab.arena.designs.DESIGNS",
)


def register_design(
    name: str, stack: Callable[..., nn.Module], paper: str, reported: str = "", **options: Any
) -> Design:
    """A new stack design in one call: `stack` (a class taking the layers, `dim` if it needs it, and its own
    options) joins `residual_kit.STACKS`, so the GPT and the LSTM stack build it as `stack=name`, and the arena's
    table, so `--designs '[name]'` trains it; `options` are further GPT options (e.g. placement=None)."""
    STACKS.register(name, stack)
    return DESIGNS.register(name, Design({"stack": name, **options}, paper, reported))


DEFAULT = ["pre", "post", "hyper"]
"""The designs of the default run: pre-norm (the baseline), post-norm (the original Transformer's, known to trail
it: a check that the arena finds a real difference) and hyper-connections (a multi-stream design of today). With a
×2 learning-rate sweep and 5 seeds each at 700 steps, that is what fits 30 minutes on a 2-core CPU; `--designs all`
runs every design, `--designs '[mhc, x0]'` any others beside pre-norm."""


def designs_of(family: NetFamily) -> list[str]:
    """The designs with a faithful form in `family`, in the table's order."""
    return [name for name, design in DESIGNS.items() if design.applies(family)]


__all__ = [
    "DEFAULT",
    "DESIGNS",
    "FAMILIES",
    "RECURRENT",
    "Design",
    "Family",
    "NetFamily",
    "designs_of",
    "register_design",
]
