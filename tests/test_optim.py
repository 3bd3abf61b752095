"""One optimiser policy: which parameters take weight decay, which are scalars, and that every design's own init
survives the model's init, checked inside the built GPT and LSTM stack of every stack design and merge."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from residual_kit import STACKS
from residual_kit.models.gpt import GPTConfig
from residual_kit.models.lstm import LSTMConfig
from residual_kit.optim import (
    connection_parameters,
    decayed_parameters,
    no_weight_decay,
    param_groups,
    scalar_parameters,
)
from residual_kit.stack import build_stack, required_options

MERGES_WITH_WEIGHTS = ["laurel_rw", "laurel_lr", "gate", "gru"]


def gpt(stack: str = "plain", **options) -> nn.Module:
    options = {**required_options(stack), **options}
    return GPTConfig(vocab_size=32, block_size=8, layers=2, dim=16, heads=2, stack=stack, **options).build()


def lstm(stack: str = "plain", **options) -> nn.Module:
    return LSTMConfig(input_size=16, dim=16, layers=3, stack=stack, **{**required_options(stack), **options}).build()


def zero_at_construction(stack: str) -> set[str]:
    """The connection parameters of a bare design (its own constructor's init) that are all zeros."""
    layers = [nn.Sequential(nn.Linear(16, 16)) for _ in range(2)]  # as many as the models below: the same names
    bare = build_stack(stack, layers, 16)
    return {n for n, p in connection_parameters(bare).items() if not p.any()}


@pytest.mark.parametrize("stack", list(STACKS))
@pytest.mark.parametrize("family", ["gpt", "lstm"])
def test_a_designs_zero_init_survives_the_models_init(family, stack):
    """MUDDFormer's W2, the zero pseudo-queries of Attention Residuals, hyper-connections' dynamic weights: zero in
    the design's constructor, still zero inside the model after its init (the GPT's: GPT-2's, which re-draws every
    other Linear; the LSTM stack's own, as GPT-2's finds no Linear in an LSTM branch)."""
    build = {"gpt": lambda: gpt(stack, init="gpt2"), "lstm": lambda: lstm(stack)}[family]
    model = build()
    zero = zero_at_construction(stack)
    prefix = "blocks." if family == "gpt" else "stack."
    inside = {n.removeprefix(prefix): p for n, p in connection_parameters(model).items()}
    for name in zero:
        assert name in inside, (name, sorted(inside))
        assert not inside[name].any(), f"{stack}: {name} is no longer zero after the model's init"


@pytest.mark.parametrize("merge", MERGES_WITH_WEIGHTS)
def test_a_merges_init_survives_the_models_init(merge):
    model = gpt(merge=merge, init="gpt2")
    merges = [m.merge for m in model.modules() if hasattr(m, "merge") and isinstance(m.merge, nn.Module)]
    assert merges
    for m in merges:
        if merge == "laurel_lr":
            assert not m.up.weight.any()  # B = 0: the block starts as its plain twin
        elif merge == "gate":
            assert torch.equal(m.gate.bias, torch.full_like(m.gate.bias, m.gate_bias))  # the carry bias
        elif merge == "gru":  # torch's GRUCell init, U(-1/sqrt(D), 1/sqrt(D)), not GPT-2's N(0, 0.02)
            weights = torch.cat([p.flatten() for p in m.gru.parameters()])
            assert weights.abs().max() <= 16**-0.5 and weights.std() > 0.1
        else:
            assert torch.equal(m.weights, torch.zeros(2))  # α = β = 2σ(0) = 1


@pytest.mark.parametrize("stack", list(STACKS))
@pytest.mark.parametrize("family", ["gpt", "lstm"])
def test_every_parameter_the_policy_exempts_is_in_the_group_without_decay(family, stack):
    model = {"gpt": gpt, "lstm": lstm}[family](stack, scale="learnable")
    groups = param_groups(model, weight_decay=0.1, lr=1e-3, scalar_lr=1e-4)
    by_id = {id(p): g for g in groups for p in g["params"]}
    assert len(by_id) == sum(len(g["params"]) for g in groups) == len(list(model.parameters()))  # each once
    names = dict(model.named_parameters())
    exempt = no_weight_decay(model)
    assert exempt == set(names) - set(decayed_parameters(model))
    for name in exempt:
        assert by_id[id(names[name])]["weight_decay"] == 0.0, name
    for name in decayed_parameters(model):
        assert by_id[id(names[name])]["weight_decay"] == 0.1, name
    for name, p in scalar_parameters(model).items():
        assert by_id[id(p)]["lr"] == 1e-4 and by_id[id(p)]["name"] == "scalars", name
    for name, p in connection_parameters(model).items():
        assert by_id[id(p)]["weight_decay"] == 0.0, name
    # norms and biases never decay; weight matrices of Linear and recurrent layers do, unless they connect layers
    for module in model.modules():
        if isinstance(module, (nn.LayerNorm, nn.RMSNorm)):
            assert all(by_id[id(p)]["weight_decay"] == 0.0 for p in module.parameters())
    assert any(".bias" in n for n in exempt) or family == "lstm"
    if family == "lstm":
        assert any("weight_hh" in n for n in decayed_parameters(model))


def test_the_policy_names_what_it_exempts():
    model = gpt("hyper", scale="learnable", value_residual="learned")
    exempt = no_weight_decay(model)
    assert {"blocks.read", "blocks.mix", "blocks.write", "blocks.w_dynamic", "blocks.s_alpha"} <= exempt
    assert "blocks.layers.1.attn.wrap.value_weights" in scalar_parameters(model)
    assert "blocks.layers.0.attn.scale.weight" in scalar_parameters(model)
    assert "tok.weight" in decayed_parameters(model) and "blocks.layers.0.mlp.wrap.fc.weight" in decayed_parameters(
        model
    )
    assert not any(n.endswith(".bias") for n in decayed_parameters(model))
    groups = param_groups(model, weight_decay=0.1)  # no scalar_lr: the scalars stay with the other exempt ones
    assert [g["name"] for g in groups] == ["decay", "no_decay"] and "lr" not in groups[0]


def test_a_module_of_ones_own_declares_its_policy():
    """A user's module joins the policy by declaring `connects` or `scalars`, as the library's do."""

    class Mixer(nn.Module):
        connects, scalars = True, ("gain",)

        def __init__(self) -> None:
            super().__init__()
            self.route = nn.Linear(4, 4)
            self.gain = nn.Parameter(torch.ones(()))

    model = nn.Sequential(nn.Linear(4, 4), Mixer())
    assert set(decayed_parameters(model)) == {"0.weight"}
    assert set(connection_parameters(model)) == {"1.route.weight", "1.route.bias", "1.gain"}
    assert set(scalar_parameters(model)) == {"1.gain"}
