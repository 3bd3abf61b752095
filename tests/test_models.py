"""The model registry: shapes, the paper's parameter counts, plain nets, and equality with hand-written code."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmarks.reference_resnet import HandWrittenResNet, copy_weights
from residual_kit import Residual
from residual_kit.models import create_model, list_models
from residual_kit.models.resnet import cifar_layout


def tiny(name: str) -> tuple[nn.Module, tuple[torch.Tensor, ...], tuple[int, ...]]:
    """Every registered model at a tiny size: (model, inputs, output shape)."""
    if name.startswith("resnet") and name[6:].isdigit():
        small = {"width_multiplier": 0.25} if name in ("resnet18", "resnet34", "resnet50") else {}
        return create_model(name, in_channels=1, num_classes=7, **small), (torch.randn(2, 1, 28, 28),), (2, 7)
    if name == "gpt":
        gpt = create_model(name, vocab_size=11, block_size=8, layers=2, dim=16, heads=2)
        return gpt, (torch.randint(11, (2, 8)),), (2, 8, 11)
    if name == "lstm_stack":
        return create_model(name, input_size=6, dim=8, layers=3), (torch.randn(2, 5, 6),), (2, 5, 8)
    if name == "lstm_reader":
        return create_model(name, layers=2, dim=8), (torch.randn(2, 1, 28, 40),), (2, 10, 11)
    if name == "recurrent_lm":
        return create_model(name, vocab_size=11, layers=2, dim=8, cell="gru"), (torch.randint(11, (2, 5)),), (2, 5, 11)
    y = torch.tensor([3, 7])
    conditional = {"conditions": 10, "projection": True}
    if name.endswith("_generator"):
        return create_model(name, z_dim=8, dim=8, **conditional), (torch.randn(2, 8), y), (2, 1, 28, 28)
    return create_model(name, dim=8, **conditional), (torch.randn(2, 1, 28, 28), y), (2,)


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_every_model(name):
    model, inputs, shape = tiny(name)
    y = model(*inputs)
    y = y[0] if isinstance(y, tuple) else y
    assert y.shape == shape
    y.float().sum().backward()
    unused = "classifier." if name.endswith("_discriminator") else None  # AC-GAN's head: only with aux_weight
    assert all(p.grad is not None for n, p in model.named_parameters() if not (unused and n.startswith(unused)))


def test_registry_covers_every_family_and_filters():
    names = list_models()
    assert {"gpt", "lstm_stack", "lstm_reader", "resnet_generator", "dcgan_discriminator"} <= set(names)
    assert list_models("resnet*")[:3] == ["resnet8", "resnet14", "resnet18"]  # natural order
    assert list_models("*_generator") == ["dcgan_generator", "resnet_generator"]


def test_forward_features_and_head_compose_to_forward():
    model = create_model("resnet20", in_channels=3).eval()
    x = torch.randn(2, 3, 32, 32)
    features = model.forward_features(x)
    assert features.shape == (2, 64, 8, 8)
    torch.testing.assert_close(model.forward_head(features), model(x))
    assert model.forward_head(features, pre_logits=True).shape == (2, model.num_features)


@pytest.mark.parametrize(
    ("name", "millions"), [("resnet20", 0.27), ("resnet32", 0.46), ("resnet56", 0.85), ("resnet110", 1.73)]
)
def test_parameter_counts_match_the_paper(name, millions):
    count = sum(p.numel() for p in create_model(name, in_channels=3).parameters())
    assert count / 1e6 == pytest.approx(millions, abs=0.01)


def test_plain_net_has_no_skip():
    plain = create_model("resnet20", residual=False).eval()
    assert all(b.formula() == "y = relu(f(x))" for b in plain.modules() if isinstance(b, Residual))
    # Zero the last BN of the first block: with no shortcut its output must be relu(0) = 0.
    block = plain.stages[0][0]
    nn.init.zeros_(block.wrap[-1].weight)
    nn.init.zeros_(block.wrap[-1].bias)
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


def test_placement_pre_is_resnet_v2():
    model = create_model("resnet20", in_channels=3, placement="pre")
    blocks = [m for m in model.modules() if isinstance(m, Residual)]
    assert len(blocks) == 9 and all(b.placement == "pre" for b in blocks)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("placement", ["post", "deepnorm"])
def test_post_and_deepnorm_put_bn_after_the_merge(placement):
    """y = relu(BN(a x + F(x))) with a = 1 (post) or DeepNet's (2N)^1/4 for N = 9 blocks (deepnorm)."""
    model = create_model("resnet20", placement=placement).eval()
    block = model.stages[0][1]
    alpha = (2 * 9) ** 0.25 if placement == "deepnorm" else 1.0
    x = torch.randn(2, 16, 8, 8)
    expected = torch.relu(block.post_norm(alpha * x + block.wrap(x)))
    torch.testing.assert_close(block(x), expected)


def test_options_reach_every_block():
    model = create_model("resnet20", scale="rezero", drop_path=0.2, shortcut="projection")
    blocks = [m for m in model.modules() if isinstance(m, Residual)]
    assert all(b.formula().count("rezero") == 1 for b in blocks)
    assert "p=0.2" in blocks[-1].formula() and "drop_path" not in blocks[0].formula()
    assert sum("proj(x)" in b.formula() for b in blocks) == 2


def test_zero_init_last_makes_blocks_start_as_identity_plus_relu():
    model = create_model("resnet20", init="zero_last").eval()
    block = model.stages[0][1]
    x = torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(block(x), torch.relu(x))


def test_bad_depth_and_name():
    with pytest.raises(ValueError, match="6n\\+2"):
        cifar_layout(21)
    with pytest.raises(ValueError, match="resnet20"):
        create_model("resnet21")


def test_same_outputs_as_hand_written_gpt():
    """The GPT overhead benchmark's twin loads our weights unchanged and computes the same function."""
    from benchmarks.reference_gpt import HandWrittenGPT
    from residual_kit.models import GPT, GPTConfig

    config = GPTConfig(vocab_size=16, block_size=13, layers=2, dim=32, heads=4)
    ours, theirs = GPT(config).eval(), HandWrittenGPT(config).eval()
    theirs.load_state_dict(ours.state_dict())
    idx = torch.randint(0, 16, (3, 13))
    torch.testing.assert_close(ours(idx), theirs(idx))
