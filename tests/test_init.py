"""Depth-aware initialisation: zero-init of the last layer, GPT-2's 1/sqrt(N) scaling, Fixup."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from residual_kit import Residual
from residual_kit.init import fixup_init_, scale_last_, weight_layers, zero_init_last_
from residual_kit.models import create_model
from residual_kit.models.gpt import GPT, GPTConfig

D = 32


def mlp_stack(depth: int, scale: str | None = None) -> nn.Sequential:
    """A norm-free residual MLP: x + W2 relu(W1 x) per block."""
    return nn.Sequential(
        *[Residual(nn.Sequential(nn.Linear(D, D), nn.ReLU(), nn.Linear(D, D)), scale=scale) for _ in range(depth)]
    )


def test_zero_init_last_makes_every_gpt_sublayer_the_identity():
    gpt = GPT(GPTConfig(layers=3, dim=D, heads=2, init="zero_last"))
    x = torch.randn(2, 5, D)
    blocks = [m for m in gpt.modules() if isinstance(m, Residual)]
    assert len(blocks) == 6
    for block in blocks:
        torch.testing.assert_close(block(x), x)


def test_zero_init_last_works_on_pre_activation_resnets_too():
    net = create_model("resnet20", placement="pre", init="zero_last").eval()
    x = torch.randn(2, 16, 8, 8)
    block = net.stages[0][1]
    torch.testing.assert_close(block(x), x)


def test_scale_last_divides_each_branch_output_layer_by_sqrt_of_the_branch_count():
    torch.manual_seed(0)
    plain = mlp_stack(4)
    torch.manual_seed(0)
    scaled = mlp_stack(4)
    assert scale_last_(scaled) == 4
    for a, b in zip(plain, scaled, strict=True):
        *same, last = zip(weight_layers(a.wrap), weight_layers(b.wrap), strict=True)
        torch.testing.assert_close(last[1].weight, last[0].weight / 2)
        for x, y in same:
            torch.testing.assert_close(x.weight, y.weight)


def test_gpt2_init_draws_every_layer_from_n_0_002_and_branch_outputs_from_it_over_sqrt_n():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(layers=8, dim=64, heads=2, init="gpt2"))
    blocks = [m for m in gpt.modules() if isinstance(m, Residual)]
    last = [weight_layers(b.wrap)[-1] for b in blocks]
    inner = [m for b in blocks for m in weight_layers(b.wrap)[:-1]]
    assert len(blocks) == 16
    std = lambda layers: torch.cat([m.weight.flatten() for m in layers]).std().item()  # noqa: E731
    assert std(inner) == pytest.approx(0.02, rel=0.05)
    assert std(last) == pytest.approx(0.02 / math.sqrt(16), rel=0.05)
    assert all(m.bias.abs().max() == 0 for m in inner + last)


def output_variance(depth: int, fixup: bool, steps: int = 20) -> tuple[float, float]:
    """Output variance of a norm-free residual MLP at init and after `steps` SGD steps of a regression."""
    torch.manual_seed(0)
    net, head = mlp_stack(depth, scale="learnable" if fixup else None), nn.Linear(D, 1)
    if fixup:
        fixup_init_(net)
    x, y = torch.randn(256, D), torch.randn(256, 1)
    at_init = net(x).var().item()
    opt = torch.optim.SGD([*net.parameters(), *head.parameters()], lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        F.mse_loss(head(net(x)), y).backward()
        opt.step()
    return at_init, net(x).var().item()


def test_fixup_output_variance_does_not_grow_with_depth():
    for depth in (4, 16, 64):  # the input has variance 1; Fixup keeps it, at init and through training
        assert output_variance(depth, fixup=True) == pytest.approx((1.0, 1.0), abs=0.1)
    shallow, deep = output_variance(4, fixup=False), output_variance(64, fixup=False)
    assert deep[0] > 10 * shallow[0]  # torch's default init: the variance grows with depth
    assert not deep[1] < 10  # and training the deep net blows up (or gives nan)


def test_fixup_scales_inner_layers_by_depth_and_zeroes_the_last_and_the_head():
    net, head = mlp_stack(16, scale="learnable"), nn.Linear(D, 10)
    torch.manual_seed(0)
    reference = mlp_stack(16)
    net.load_state_dict(reference.state_dict(), strict=False)
    assert fixup_init_(net, head) == pytest.approx(16**-0.5)  # m = 2 layers per branch: L^(-1/2)
    for ours, theirs in zip(net, reference, strict=True):
        torch.testing.assert_close(ours.wrap[0].weight, theirs.wrap[0].weight * 16**-0.5)
        assert not ours.wrap[2].weight.any() and not ours.wrap[2].bias.any()
    assert not head.weight.any()


def test_fixup_gpt_without_norms_trains():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=16, block_size=8, layers=16, dim=D, heads=2, placement=None, scale="learnable",
                        init="fixup"))  # fmt: skip
    assert not any(isinstance(m, nn.LayerNorm) for m in gpt.modules())
    opt = torch.optim.AdamW(gpt.parameters(), lr=1e-3)
    idx = torch.arange(8).repeat(16, 1)  # a sequence to learn: 0 1 2 ... 7
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = F.cross_entropy(gpt(idx[:, :-1]).flatten(0, 1), idx[:, 1:].flatten())
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]


def test_unknown_init_is_named():
    with pytest.raises(ValueError, match="init='lsuv'"):
        GPT(GPTConfig(layers=1, dim=D, heads=2, init="lsuv"))


def test_zero_init_last_counts_the_branches():
    assert zero_init_last_(mlp_stack(5)) == 5
