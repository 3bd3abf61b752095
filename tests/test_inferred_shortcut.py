"""An inferred shortcut behaves like torch's lazy modules: no weight is lost before the first call."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from residual_kit import Residual


def conv_block(kind: str = "projection") -> Residual:
    branch = nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8))
    return Residual(branch, shortcut=kind, data_format="channels_first")


def seq_block() -> Residual:
    return Residual(nn.Linear(6, 10), shortcut="projection")


@pytest.mark.parametrize("make", [conv_block, seq_block])
def test_an_optimiser_built_before_the_first_call_trains_the_shortcut(make):
    torch.manual_seed(0)
    block = make()
    opt = torch.optim.SGD(block.parameters(), lr=0.1)  # before any forward
    x = torch.randn(2, 4, 8, 8) if make is conv_block else torch.randn(2, 3, 6)
    block(x).pow(2).mean().backward()
    before = block.shortcut.path[0].weight.detach().clone()
    opt.step()
    assert not torch.equal(before, block.shortcut.path[0].weight)  # the optimiser held the shortcut's weight
    assert any(p is block.shortcut.path[0].weight for group in opt.param_groups for p in group["params"])


@pytest.mark.parametrize("make", [conv_block, seq_block])
def test_load_state_dict_before_the_first_call_loads_the_shortcut(make):
    torch.manual_seed(0)
    trained = make()
    x = torch.randn(2, 4, 8, 8) if make is conv_block else torch.randn(2, 3, 6)
    trained(x)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(torch.randn_like(p))
    fresh = make()
    fresh.load_state_dict(trained.state_dict())  # no forward yet: sizes come from the file
    trained.eval(), fresh.eval()
    torch.testing.assert_close(fresh(x), trained(x))
    assert set(fresh.state_dict()) == set(trained.state_dict())
    assert "shortcut.path.0.weight" in fresh.state_dict()


def test_a_state_dict_of_other_widths_is_named():
    other = Residual(nn.Sequential(nn.Conv2d(4, 16, 3, stride=2, padding=1)), shortcut="projection",
                     data_format="channels_first")  # fmt: skip
    other(torch.randn(2, 4, 8, 8))
    block = conv_block()
    state = {k: v for k, v in other.state_dict().items() if k.startswith("shortcut.path.0")}
    block.load_state_dict(state, strict=False)
    with pytest.raises(ValueError, match=r"loaded shortcut weight is \(16, 4, 1, 1\) but this branch needs"):
        block(torch.randn(2, 4, 8, 8))


def test_compile_before_the_first_call_says_run_one_batch_first():
    block = conv_block()
    with pytest.raises(Exception, match="run one batch"):
        torch.compile(block, fullgraph=True, backend="eager")(torch.randn(2, 4, 8, 8))


def test_export_before_the_first_call_says_run_one_batch_first():
    """torch's own lazy-parameter error, which says the same: call forward with a dummy batch first."""
    with pytest.raises(Exception, match="forward` with a dummy batch"):
        torch.export.export(conv_block(), (torch.randn(2, 4, 8, 8),))


def test_compile_and_export_after_one_batch_work():
    block = conv_block().eval()
    x = torch.randn(2, 4, 8, 8)
    eager = block(x)
    torch.testing.assert_close(torch.compile(block, backend="eager")(x), eager)
    torch.testing.assert_close(torch.export.export(block, (x,)).module()(x), eager)


def test_pad_shortcut_inferred_has_no_parameters():
    block = conv_block("pad")
    assert not list(block.shortcut.parameters())
    assert block(torch.randn(2, 4, 8, 8)).shape == (2, 8, 4, 4)
