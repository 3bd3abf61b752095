"""The model registry: shapes, the paper's parameter counts, plain nets, and equality with hand-written code."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmarks.reference_resnet import HandWrittenResNet, copy_weights
from residual_kit import Residual
from residual_kit.models import cifar_resnet, create_model, list_models


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_every_model(name):
    small = {"width": 0.25} if name in ("resnet18", "resnet34", "resnet50") else {}
    model = create_model(name, in_channels=1, num_classes=7, **small)
    x = torch.randn(2, 1, 28, 28)
    y = model(x)
    assert y.shape == (2, 7)
    y.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize(
    ("name", "millions"), [("resnet20", 0.27), ("resnet32", 0.46), ("resnet56", 0.85), ("resnet110", 1.73)]
)
def test_parameter_counts_match_the_paper(name, millions):
    count = sum(p.numel() for p in create_model(name).parameters())
    assert count / 1e6 == pytest.approx(millions, abs=0.01)


def test_plain_net_has_no_skip():
    plain = create_model("resnet20", plain=True).eval()
    assert not any(isinstance(m, Residual) for m in plain.modules())
    # Zero the last BN of the first block: with no shortcut its output must be relu(0) = 0.
    block = plain.stages[0][0]
    nn.init.zeros_(block[0][-1].weight)
    nn.init.zeros_(block[0][-1].bias)
    assert torch.count_nonzero(block(torch.randn(2, 16, 8, 8))) == 0
    residual = create_model("resnet20").stages[0][0].eval()
    nn.init.zeros_(residual.wrap[-1].weight)
    nn.init.zeros_(residual.wrap[-1].bias)
    x = torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(residual(x), torch.relu(x))  # only the identity path remains


def test_same_outputs_as_hand_written_resnet20():
    ours = create_model("resnet20", in_channels=3)
    theirs = HandWrittenResNet(20, in_channels=3)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    copy_weights(ours, theirs)
    x = torch.randn(4, 3, 32, 32)
    for mode in (True, False):
        ours.train(mode), theirs.train(mode)
        torch.testing.assert_close(ours(x), theirs(x))


def test_preact_is_the_pre_norm_variant():
    model = create_model("resnet20", preact=True)
    blocks = [m for m in model.modules() if isinstance(m, Residual)]
    assert len(blocks) == 9 and all(b.placement == "pre" for b in blocks)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_options_reach_every_block():
    model = create_model("resnet20", scale="rezero", drop_path=0.2, shortcut="B")
    blocks = [m for m in model.modules() if isinstance(m, Residual)]
    assert all(b.formula().count("rezero") == 1 for b in blocks)
    assert "p=0.2" in blocks[-1].formula() and "drop_path" not in blocks[0].formula()
    assert sum("proj(x)" in b.formula() for b in blocks) == 2


def test_zero_init_last_makes_blocks_start_as_identity_plus_relu():
    model = create_model("resnet20", zero_init_last=True).eval()
    block = model.stages[0][1]
    x = torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(block(x), torch.relu(x))


def test_bad_depth_and_name():
    with pytest.raises(ValueError, match="6n\\+2"):
        cifar_resnet(21)
    with pytest.raises(ValueError, match="resnet20"):
        create_model("resnet21")
