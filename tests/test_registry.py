"""Slot registries: a variant registered from user code is usable by name in `Residual` and the models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.reference_resnet import HandWrittenResNet, copy_weights
from residual_kit import ACTIVATIONS, MERGES, NORMS, SCALES, SHORTCUTS, STACKS, Add, Registry, Residual, ScaledAdd
from residual_kit.drop_path import drop_path_rates
from residual_kit.models import create_model
from residual_kit.models.gpt import GPT, GPTConfig


class Half(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x

    def formula(self, fx: str) -> str:
        return f"½·{fx}"


@pytest.fixture
def half_scale():
    SCALES.register("half", lambda slot: Half())
    yield
    SCALES.pop("half")


def test_registered_scale_is_used_by_name_and_writes_its_formula(half_scale):
    block = Residual(nn.Linear(4, 4), scale="half")
    x = torch.randn(3, 4)
    torch.testing.assert_close(block(x), x + 0.5 * block.wrap(x))
    assert block.formula() == "y = x + ½·f(x)"


def test_registered_scale_reaches_every_model(half_scale):
    net = create_model("resnet20", in_channels=1, scale="half")
    assert sum(isinstance(m, Half) for m in net.modules()) == 9
    gpt = GPT(GPTConfig(layers=2, dim=16, heads=2, scale="half"))
    assert sum(isinstance(m, Half) for m in gpt.modules()) == 4


def test_registry_refuses_a_taken_name_unless_replacing():
    registry = Registry("merge", {"add": lambda *a: Add()})
    with pytest.raises(ValueError, match="already registered"):
        registry.register("add", lambda *a: Add())
    registry.register("add", lambda *a: ScaledAdd(2.0), replace=True)
    assert isinstance(registry.get_builder("add")(), ScaledAdd)


def test_unknown_names_list_the_registered_ones_and_how_to_add_one():
    with pytest.raises(
        ValueError,
        match=r"merge='mean' is not one of \['add', 'concat', 'gate', 'gru', 'laurel_lr', 'laurel_rw', 'none', "
        r"'orthogonal'\].*MERGES.register",
    ):
        Residual(nn.Linear(4, 4), merge="mean")
    with pytest.raises(ValueError, match=r"MERGES\.register"):
        create_model("resnet20", merge="mean")
    with pytest.raises(ValueError, match=r"STACKS\.register"):
        GPT(GPTConfig(layers=2, dim=16, heads=2, stack="ladder"))


@pytest.mark.parametrize("registry", [NORMS, SHORTCUTS, SCALES, MERGES, ACTIVATIONS, STACKS])
def test_every_slot_kind_is_a_registry(registry):
    assert isinstance(registry, Registry) and len(registry) >= 3


def test_user_module_without_a_formula_is_named_in_the_formula():
    class Mean(nn.Module):
        def forward(self, s, b):
            return (s + b) / 2

    assert Residual(nn.Linear(4, 4), merge=Mean()).formula() == "y = Mean(x, f(x))"


@pytest.mark.parametrize("merge", [Add(inplace=True), ScaledAdd(1.7, inplace=True)])
def test_in_place_add_is_the_sum_and_leaves_x_alone(merge):
    s, b = torch.randn(2, 3), torch.randn(2, 3)
    expected = getattr(merge, "alpha", 1.0) * s + b
    s_before = s.clone()
    torch.testing.assert_close(merge(s, b.clone()), expected)
    torch.testing.assert_close(s, s_before)


def test_resnet_adding_in_place_has_the_gradients_of_the_hand_written_net():
    torch.manual_seed(0)
    ours, theirs = create_model("resnet20", in_channels=3), HandWrittenResNet(20, in_channels=3)
    copy_weights(ours, theirs)
    assert any(isinstance(m, Add) and m.inplace for m in ours.modules())
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    for net in (ours, theirs):
        F.cross_entropy(net(x), y).backward()
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, msg=name, atol=1e-5, rtol=1e-4)


def test_drop_path_rates_rise_linearly_from_zero():
    assert drop_path_rates(0.2, 5) == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])
    assert drop_path_rates(0.3, 1) == [0.0]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        drop_path_rates(1.5, 3)


def test_every_model_takes_its_drop_path_schedule_from_the_helper():
    net = create_model("resnet20", drop_path=0.2)
    rates = [m.drop_path.p if hasattr(m.drop_path, "p") else 0.0 for m in net.modules() if isinstance(m, Residual)]
    assert rates == pytest.approx(drop_path_rates(0.2, 9))
    gpt = GPT(GPTConfig(layers=2, dim=16, heads=2, drop_path=0.3))
    rates = [m.drop_path.p if hasattr(m.drop_path, "p") else 0.0 for m in gpt.modules() if isinstance(m, Residual)]
    assert rates == pytest.approx(drop_path_rates(0.3, 4))
