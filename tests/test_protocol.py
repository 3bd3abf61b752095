"""One residual protocol: every residual option changes every model in every stack design, or is refused in one line.

Each case builds a model from seed 0 with one option set and compares it with the same model at its defaults:
a different parameter count, different weights or a different train-mode output (same input, same seed) shows
that the option took effect. An option a design cannot honour must raise a one-line ValueError instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from residual_kit import Residual
from residual_kit.models import GANConfig, GPTConfig, LSTMConfig, ResNetConfig
from residual_kit.stack import STACKS, HyperConnections, required_options, stack_options

RESIDUAL = [
    *[("placement", p) for p in (None, "pre", "post", "sandwich", "deepnorm", "mix", "lns")],
    *[("norm", n) for n in ("layer", "rms", "dyt", "derf", "group", "batch")],
    *[("scale", s) for s in (0.5, "learnable", "rezero", "layerscale", "completep")],
    ("drop_path", 0.5),
    *[("merge", m) for m in ("gate", "concat", "none", "laurel_rw", "laurel_lr", "orthogonal", "gru")],
    *[("init", i) for i in ("zero_last", "gpt2", "fixup")],
]
EXAMPLES = {
    "dilation": 2,
    "period": 2,
    "streams": 2,
    "dynamic": False,
    "fractions": 4,
    "blocks": 1,
    "at": 3,
    "width": 2,
    "iters": 3,
}
"""A value other than its default for every option a registered stack design takes (backout: the last layer
of the 3-layer GPT; past the 2 residual layers of the LSTM stack, which refuses it)."""
STACK_OPTIONS = {name: [{k: EXAMPLES[k]} for k in stack_options(name) if k in EXAMPLES] for name in STACKS}


def test_every_design_option_has_an_example():
    assert {k for name in STACKS for k in stack_options(name)} <= set(EXAMPLES)


def gpt(**options: Any) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    config = GPTConfig(vocab_size=11, block_size=8, layers=3, dim=16, heads=2, **options)
    return config.build(), (torch.randint(11, (2, 8)),)


def lstm(**options: Any) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    return LSTMConfig(input_size=6, dim=8, layers=3, **options).build(), (torch.randn(2, 5, 6),)


def resnet(**options: Any) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    return ResNetConfig("resnet8", **options).build(), (torch.randn(2, 1, 12, 12),)


class Both(nn.Module):
    def __init__(self, gan: nn.Module) -> None:
        super().__init__()
        self.gan = gan

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fake = self.gan.generator(z, y)
        return self.gan.discriminator(fake, y)


def gan(**options: Any) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    net = GANConfig(z_dim=8, dim=8, **options).build(conditions=10, projection=True)
    return Both(net), (torch.randn(3, 8), torch.tensor([1, 2, 3]))


FAMILIES: dict[str, Callable[..., tuple[nn.Module, tuple[torch.Tensor, ...]]]] = {
    "gpt": gpt,
    "lstm": lstm,
    "resnet": resnet,
    "gan": gan,
}
EXTRA: dict[str, list[tuple[str, Any]]] = {
    "gpt": [("dropout", 0.5), ("value_residual", 0.5), ("stack", "dense"), ("stack", "hyper"), ("stack", "mhc")],
    "lstm": [
        ("dropout", 0.5),
        ("residual", False),
        ("residual_from", 0),
        ("bidirectional", True),
        ("cell", "gru"),
        ("stack", "dense"),
        ("stack", "hyper"),
    ],
    "resnet": [("shortcut", "projection"), ("residual", False), ("width_multiplier", 0.5)],
    "gan": [("arch", "dcgan"), ("class_input", False), ("d_dim", 16)],
}
STACKED = ("gpt", "lstm")


CONFIGS = {"gpt": GPTConfig, "lstm": LSTMConfig, "resnet": ResNetConfig, "gan": GANConfig}


def cases() -> list[tuple[str, str, str, Any]]:
    out = []
    for family in FAMILIES:
        defaults = CONFIGS[family]()
        for stack in STACK_OPTIONS if family in STACKED else ["plain"]:
            base = {"stack": stack, **required_options(stack)} if family in STACKED else {}
            for option, value in RESIDUAL + (EXTRA[family] if stack == "plain" else []):
                if (
                    base.get(option, getattr(defaults, option)) != value
                ):  # the family's own default changes nothing by definition
                    out.append((family, stack, option, value))
            if family in STACKED:
                out += [(family, stack, "stack_options", o) for o in STACK_OPTIONS[stack]]
    return out


def fingerprint(family: str, options: dict[str, Any]) -> tuple[list[tuple[str, tuple[int, ...]]], list, torch.Tensor]:
    torch.manual_seed(0)
    model, inputs = FAMILIES[family](**options)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(2)
    with torch.no_grad():  # the same small step away from init for both, as training takes: an option that acts
        for p in model.parameters():  # only off its init point (Sinkhorn's iterations) shows in the output too
            p.add_(0.05 * torch.randn_like(p))
    torch.manual_seed(1)
    out = model.train()(*inputs)
    out = out[0] if isinstance(out, tuple) else out
    return [(k, tuple(v.shape)) for k, v in state.items()], list(state.values()), out.detach()


def differs(a: tuple, b: tuple) -> bool:
    (shapes_a, weights_a, out_a), (shapes_b, weights_b, out_b) = a, b
    if shapes_a != shapes_b:
        return True
    if any(not torch.equal(x, y) for x, y in zip(weights_a, weights_b, strict=True)):
        return True
    return out_a.shape != out_b.shape or not torch.equal(out_a, out_b)


@pytest.mark.parametrize(("family", "stack", "option", "value"), cases(), ids=lambda v: str(v))
def test_every_option_changes_the_model_or_is_refused_in_one_line(family, stack, option, value):
    base = {"stack": stack, **required_options(stack)} if family in STACKED else {}
    baseline = fingerprint(family, base)
    try:
        changed = fingerprint(family, {**base, option: value})
    except ValueError as err:
        assert "\n" not in str(err) and len(str(err)) < 400, f"a long error for {option}={value!r}: {err}"
        return
    assert differs(baseline, changed), f"{family}, stack={stack}: {option}={value!r} changed nothing"


def test_hyper_connections_honour_the_sublayers_options():
    """The options that act inside the branch reach the hyper-connection sub-layers; the merge's are refused."""
    model, _ = gpt(stack="hyper", scale="layerscale", drop_path=0.5)
    sublayers = [m for m in model.modules() if isinstance(m, Residual)]
    assert len(sublayers) == 6 and all("γ⊙" in b.formula() for b in sublayers)
    assert "drop_path" in sublayers[-1].formula()
    with pytest.raises(ValueError, match=r"stack='hyper' merges the residual streams itself.*placement='post'"):
        gpt(stack="hyper", placement="post")
    assert isinstance(model.blocks, HyperConnections)


def test_unknown_stack_option_is_named():
    with pytest.raises(ValueError, match="stack='dense' takes no option 'streams'"):
        gpt(stack="dense", stack_options={"streams": 2})
