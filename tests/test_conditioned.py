"""Conditioned norms: conditional BN and adaLN-zero against their formulas."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from residual_kit.conditioned import AdaLNZero, ConditionalNorm
from residual_kit.models.gan import UpBranch

D = 8


def randomise(module: nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()


def test_adaln_zero_is_the_identity_at_init():
    block = AdaLNZero(nn.Sequential(nn.Linear(D, D), nn.GELU(), nn.Linear(D, D)), D, num_classes=10)
    x, c = torch.randn(4, 5, D), torch.randint(0, 10, (4,))
    torch.testing.assert_close(block(x, c), x)


def test_adaln_zero_follows_its_formula_for_a_vector_condition():
    f = nn.Linear(D, D)
    block = AdaLNZero(f, D, cond_dim=6)
    randomise(block.norm.map)
    x, c = torch.randn(4, 5, D), torch.randn(4, 6)
    gamma, beta, gate = block.norm.map[1](F.silu(c)).chunk(3, dim=-1)
    h = F.layer_norm(x, (D,)) * (1 + gamma[:, None]) + beta[:, None]
    torch.testing.assert_close(block(x, c), x + gate[:, None] * f(h))
    assert "g(c)" in block.formula()


def test_conditional_bn_follows_its_formula_and_is_plain_bn_without_classes():
    norm = ConditionalNorm(D, num_classes=3, norm="batch", data_format="channels_first")
    assert norm.norm.weight is None  # the class supplies gain and bias
    randomise(norm.map)
    x, y = torch.randn(6, D, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    gamma, beta = norm.map(y).chunk(2, dim=-1)
    expected = F.batch_norm(x, None, None, training=True) * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
    torch.testing.assert_close(norm(x, y), expected)
    plain = ConditionalNorm(D, norm="batch", data_format="channels_first")
    assert isinstance(plain.norm, nn.BatchNorm2d) and plain.norm.weight is not None


def test_the_gan_generator_uses_the_conditioned_norm():
    branch = UpBranch(D, D, num_classes=10)
    assert isinstance(branch.norm1, ConditionalNorm) and isinstance(branch.norm1.map, nn.Embedding)
    randomise(branch.norm1.map)
    x = torch.randn(2, D, 4, 4)
    same, other = branch(x, torch.tensor([0, 0])), branch(x, torch.tensor([0, 1]))
    assert not torch.allclose(same[1], other[1])  # the second sample's class changed its output


def test_conditioned_norm_errors_name_the_fix():
    with pytest.raises(ValueError, match="not both"):
        ConditionalNorm(D, num_classes=3, cond_dim=4)
    with pytest.raises(ValueError, match="needs a condition"):
        ConditionalNorm(D, gate=True)
    with pytest.raises(ValueError, match="pass the condition"):
        ConditionalNorm(D, num_classes=3)(torch.randn(2, D))


def test_adaln_zero_compiles_fullgraph():
    block = AdaLNZero(nn.Linear(D, D), D, num_classes=4)
    randomise(block.norm.map)
    x, c = torch.randn(2, 3, D), torch.tensor([1, 2])
    torch.testing.assert_close(torch.compile(block, fullgraph=True, backend="eager")(x, c), block(x, c))
