"""Every Residual variant against its formula, its invariants, and its errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from residual_kit import (
    ConcatFuse,
    DropPath,
    GatedMerge,
    LayerScale,
    PadShortcut,
    Projection,
    Residual,
    ReZero,
    ScaledAdd,
    deepnorm_alpha,
    deepnorm_beta,
    drop_path,
)

torch.manual_seed(0)
B, T, D = 4, 5, 8


def seq(d: int = D) -> torch.Tensor:
    return torch.randn(B, T, d, dtype=torch.float64)


def img(c: int = 4, hw: int = 8) -> torch.Tensor:
    return torch.randn(B, c, hw, hw, dtype=torch.float64)


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def ln(x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:])


# --- the plain residual and the norm placements -------------------------------------------------


def test_default_is_x_plus_f_x():
    f = nn.Linear(D, D).double()
    x = seq()
    close(Residual(f)(x), x + f(x))


def test_pre_norm():
    f = nn.Linear(D, D).double()
    x = seq()
    close(Residual(f, placement="pre", dim=D).double()(x), x + f(ln(x)))


def test_post_norm():
    f = nn.Linear(D, D).double()
    x = seq()
    close(Residual(f, placement="post", dim=D).double()(x), ln(x + f(x)))


def test_sandwich_norm():
    f = nn.Linear(D, 2 * D).double()
    g = nn.Linear(2 * D, D).double()
    x = seq()
    r = Residual(nn.Sequential(f, g), placement="sandwich", dim=D).double()
    close(r(x), x + ln(g(f(ln(x)))))


def test_layer_norm_over_channels_of_conv_features():
    f = nn.Conv2d(4, 4, 3, padding=1).double()
    x = img()
    r = Residual(f, placement="pre", dim=4, data_format="channels_first").double()
    normed = ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # normalise C at every pixel
    close(r(x), x + f(normed))


def test_batch_norm_over_features_of_sequences():
    f = nn.Linear(D, D).double()
    x = seq()
    r = Residual(f, norm="batch", placement="post", dim=D).double().train()
    y = x + f(x)
    flat = y.reshape(-1, D)
    expected = (flat - flat.mean(0)) / torch.sqrt(flat.var(0, unbiased=False) + 1e-5)
    close(r(x), expected.reshape(y.shape))


def test_norm_given_as_factory_and_instance():
    f = nn.Linear(D, D).double()
    x = seq()
    by_class = Residual(f, norm=nn.LayerNorm, placement="pre", dim=D).double()
    by_instance = Residual(f, norm=nn.LayerNorm(D), placement="sandwich").double()
    close(by_class(x), x + f(ln(x)))
    close(by_instance(x), x + ln(f(ln(x))))
    assert by_instance.pre_norm is not by_instance.post_branch_norm  # copies never share weights


# --- shortcuts ---------------------------------------------------------------------------------


def conv_branch(cin: int = 4, cout: int = 8, stride: int = 2) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)).double().eval()


def test_option_a_pad_shortcut_subsamples_and_zero_pads():
    f = conv_branch()
    x = img()
    y = Residual(f, shortcut="pad", out_dim=8, stride=2, data_format="channels_first")(x)
    padded = torch.cat([x[:, :, ::2, ::2], torch.zeros(B, 4, 4, 4, dtype=x.dtype)], dim=1)
    close(y, padded + f(x))


def test_projection_shortcut_conv():
    f = conv_branch()
    x = img()
    r = Residual(f, shortcut="projection", dim=4, out_dim=8, stride=2, data_format="channels_first").double().eval()
    proj = r.shortcut
    assert isinstance(proj, Projection)
    close(r(x), proj[1](F.conv2d(x, proj[0].weight, stride=2)) + f(x))


def test_projection_shortcut_linear():
    f = nn.Linear(D, 2 * D).double()
    x = seq()
    r = Residual(f, shortcut="projection", dim=D, out_dim=2 * D).double()
    close(r(x), r.shortcut[0](x) + f(x))


@pytest.mark.parametrize("kind", ["projection", "pad"])
def test_shortcut_inferred_from_first_forward(kind):
    f = conv_branch()
    x = img()
    r = Residual(f, shortcut=kind, data_format="channels_first").double().eval()
    y = r(x)
    assert y.shape == (B, 8, 4, 4)
    assert r.shortcut.path is not None and not r.wrap._forward_hooks  # inferred once, hook gone
    close(y, r.shortcut.path(x) + f(x))


def test_any_module_as_shortcut():
    f, s = nn.Linear(D, D).double(), nn.Linear(D, D).double()
    x = seq()
    close(Residual(f, shortcut=s)(x), s(x) + f(x))


# --- branch scaling ----------------------------------------------------------------------------


def test_constant_scale():
    f = nn.Linear(D, D).double()
    x = seq()
    close(Residual(f, scale=0.25)(x), x + 0.25 * f(x))


def test_learnable_scale_is_a_trained_scalar():
    f = nn.Linear(D, D).double()
    x = seq()
    r = Residual(f, scale="learnable").double()
    with torch.no_grad():
        r.scale.weight.fill_(0.7)
    close(r(x), x + 0.7 * f(x))
    assert [n for n, _ in r.scale.named_parameters()] == ["weight"]


def test_rezero_is_exactly_the_identity_at_init():
    x = seq()
    r = Residual(nn.Linear(D, D), scale="rezero").double()
    assert torch.equal(r(x), x)


def test_layerscale_per_channel():
    f = nn.Linear(D, D).double()
    x = seq()
    r = Residual(f, scale=LayerScale(D, init=0.1)).double()
    gamma = torch.linspace(0.1, 0.8, D, dtype=torch.float64)
    with torch.no_grad():
        r.scale.gamma.copy_(gamma)
    close(r(x), x + gamma * f(x))


def test_layerscale_channels_first():
    f = nn.Conv2d(4, 4, 1).double()
    x = img()
    r = Residual(f, scale="layerscale", dim=4, data_format="channels_first").double()
    close(r(x), x + 1e-5 * f(x))


def test_deepnorm_formula_and_constants():
    f = nn.Linear(D, D).double()
    x = seq()
    alpha = deepnorm_alpha(12)
    r = Residual(f, placement="post", dim=D, merge=ScaledAdd(alpha)).double()
    close(r(x), ln(alpha * x + f(x)))
    assert alpha == pytest.approx(24**0.25)
    assert deepnorm_beta(12) == pytest.approx(96**-0.25)
    assert deepnorm_alpha(6, "encoder", 6) == pytest.approx(0.81 * (6**5) ** (1 / 16))
    assert deepnorm_beta(6, "encoder", 6) == pytest.approx(0.87 * (6**5) ** (-1 / 16))
    assert deepnorm_alpha(6, "decoder", 6) == pytest.approx(18**0.25)
    assert deepnorm_beta(6, "decoder", 6) == pytest.approx(72**-0.25)


def test_deepnorm_placement_scales_init_by_beta():
    torch.manual_seed(1)
    block = Residual(nn.Linear(256, 256), placement="deepnorm", depth=100, dim=256)
    std = block.wrap.weight.std().item()
    xavier_std = (2 / (256 + 256)) ** 0.5
    assert std == pytest.approx(deepnorm_beta(100) * xavier_std, rel=0.05)
    assert block.merge.alpha == pytest.approx(deepnorm_alpha(100))


# --- stochastic depth --------------------------------------------------------------------------


def test_drop_path_eval_is_identity():
    x = seq()
    r = Residual(nn.Linear(D, D), drop_path=0.9).double().eval()
    close(r(x), x + r.wrap(x))


def test_drop_path_p1_passes_only_the_shortcut():
    x = seq()
    r = Residual(nn.Linear(D, D), drop_path=1.0).double().train()
    assert torch.equal(r(x), x)


def test_drop_path_drops_whole_samples_and_keeps_expectation():
    torch.manual_seed(0)
    x = torch.ones(20000, 3, 2)
    y = drop_path(x, p=0.25, training=True)
    per_sample = y.reshape(20000, -1)
    assert torch.all(per_sample == per_sample[:, :1])  # one decision per sample
    torch.testing.assert_close(per_sample[:, 0].unique(), torch.tensor([0.0, 1 / 0.75]))
    assert y.mean().item() == pytest.approx(1.0, abs=0.02)


def test_drop_path_rejects_bad_probability():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        DropPath(1.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Residual(nn.Identity(), drop_path=-0.1)


# --- other merges and the activation -----------------------------------------------------------


def test_highway_gate():
    f = nn.Linear(D, D).double()
    x = seq()
    r = Residual(f, merge="gate", dim=D).double()
    assert isinstance(r.merge, GatedMerge)
    t = torch.sigmoid(r.merge.gate(x))
    close(r(x), t * f(x) + (1 - t) * x)


def test_concat_fuse_conv():
    f = conv_branch(4, 6, 1)
    x = img()
    r = Residual(f, merge="concat", dim=4, out_dim=6, data_format="channels_first").double()
    assert isinstance(r.merge, ConcatFuse)
    close(r(x), r.merge.fuse(torch.cat([x, f(x)], dim=1)))


def test_activation_after_merge_resnet_v1():
    f = nn.Linear(D, D).double()
    x = seq()
    close(Residual(f, activation="relu")(x), torch.relu(x + f(x)))


# --- tuples, extra arguments, gradients, in-place safety ---------------------------------------


def test_lstm_tuple_and_hidden_state_pass_through():
    lstm = nn.LSTM(D, D, num_layers=2, batch_first=True).double()
    x = seq()
    h0 = (torch.randn(2, B, D, dtype=x.dtype), torch.randn(2, B, D, dtype=x.dtype))
    y, (h, c) = Residual(lstm)(x, h0)
    out, (h_ref, c_ref) = lstm(x, h0)
    close(y, x + out)
    close(h, h_ref)
    close(c, c_ref)


def test_gru_with_pre_norm():
    gru = nn.GRU(D, D, batch_first=True).double()
    x = seq()
    y, h = Residual(gru, placement="pre", dim=D).double()(x)
    out, h_ref = gru(ln(x))
    close(y, x + out)
    close(h, h_ref)


def test_multihead_attention_with_masks_as_kwargs():
    mha = nn.MultiheadAttention(D, 2, batch_first=True).double().eval()
    x = seq()
    causal = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    pad = torch.zeros(B, T, dtype=torch.bool)
    pad[:, -1] = True
    y, w = Residual(mha)(x, x, x, attn_mask=causal, key_padding_mask=pad, need_weights=True)
    out, w_ref = mha(x, x, x, attn_mask=causal, key_padding_mask=pad, need_weights=True)
    close(y, x + out)
    close(w, w_ref)
    assert w[:, 0, 1:].abs().max() == 0  # the causal mask really reached the module


def test_gradient_through_zeroed_branch_equals_upstream():
    x = seq().requires_grad_()
    r = Residual(nn.Sequential(nn.Linear(D, D), nn.Tanh()), scale="rezero").double()
    y = r(x)
    g = torch.randn_like(y)
    (dx,) = torch.autograd.grad(y, x, g)
    assert torch.equal(dx, g)


def test_gradient_is_one_plus_branch_jacobian():
    x = torch.randn(3, dtype=torch.float64, requires_grad=True)
    f = nn.Linear(3, 3, bias=False).double()
    jac = torch.autograd.functional.jacobian(Residual(f), x)
    close(jac, torch.eye(3, dtype=x.dtype) + f.weight)  # dy/dx = I + df/dx


def test_wrapping_a_module_that_returns_its_input_does_not_corrupt_it():
    x = seq()
    before = x.clone()
    y = Residual(nn.Identity())(x)
    close(y, 2 * before)
    assert torch.equal(x, before)


def test_activation_after_merge_never_touches_the_input_and_keeps_gradients():
    x = seq().requires_grad_()
    before = x.detach().clone()
    y = Residual(nn.Identity(), activation="relu")(x)  # f returns x itself
    assert torch.equal(x.detach(), before)
    close(y, torch.relu(2 * before))
    (dx,) = torch.autograd.grad(y.sum(), x)
    close(dx, 2.0 * (before > 0).double())


# --- errors ------------------------------------------------------------------------------------


def test_shape_mismatch_names_both_shapes_and_the_fix():
    r = Residual(conv_branch(), data_format="channels_first")
    with pytest.raises(ValueError) as err:
        r(img())
    msg = str(err.value)
    assert "(4, 4, 8, 8)" in msg and "(4, 8, 4, 4)" in msg
    assert "shortcut='projection'" in msg and "shortcut='pad'" in msg


@pytest.mark.parametrize(
    ("kwargs", "allowed"),
    [
        ({"placement": "middle"}, "'pre', 'post', 'sandwich', 'deepnorm'"),
        ({"shortcut": "skip"}, "'identity', 'pad', 'projection'"),
        ({"merge": "mul"}, "'add', 'concat', 'gate', 'gru', 'laurel_lr', 'laurel_rw', 'none', 'orthogonal'"),
        ({"scale": "huge"}, "'completep', 'layerscale', 'learnable', 'rezero'"),
        ({"activation": "swish"}, "'gelu', 'relu'"),
        ({"data_format": "NHWC"}, "'channels_last', 'channels_first'"),
        ({"norm": "instance", "placement": "pre", "dim": D}, "'batch', 'derf', 'dyt', 'group', 'layer', 'rms'"),
    ],
)
def test_bad_option_lists_the_allowed_values(kwargs, allowed):
    with pytest.raises(ValueError) as err:
        Residual(nn.Linear(D, D), **kwargs)
    assert allowed in str(err.value)


def test_missing_width_is_named():
    with pytest.raises(ValueError, match="dim="):
        Residual(nn.Linear(D, D), placement="pre")


# --- repr and state dict -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "formula"),
    [
        ({}, "y = x + f(x)"),
        ({"placement": "pre", "dim": D}, "y = x + f(norm(x))"),
        ({"placement": "post", "dim": D}, "y = norm(x + f(x))"),
        ({"placement": "sandwich", "dim": D}, "y = x + norm2(f(norm(x)))"),
        ({"scale": "rezero", "drop_path": 0.1}, "y = x + drop_path(rezero·f(x), p=0.1)"),
        ({"activation": "relu", "shortcut": "pad", "out_dim": D}, "y = relu(pad(x) + f(x))"),
    ],
)
def test_repr_states_the_formula(kwargs, formula):
    r = Residual(nn.Linear(D, D), **kwargs)
    assert r.formula() == formula
    assert repr(r).startswith(f"Residual({formula}")


def test_state_dict_keys_are_stable():
    r = Residual(
        nn.Linear(D, 2 * D),
        placement="sandwich",
        dim=D,
        out_dim=2 * D,
        shortcut="projection",
        scale="layerscale",
        merge="gate",
    )
    assert sorted(r.state_dict()) == sorted(
        [
            "wrap.weight",
            "wrap.bias",
            "pre_norm.weight",
            "pre_norm.bias",
            "post_branch_norm.weight",
            "post_branch_norm.bias",
            "shortcut.0.weight",
            "shortcut.0.bias",
            "scale.gamma",
            "merge.gate.weight",
            "merge.gate.bias",
        ]
    )
    assert list(Residual(nn.Linear(D, D)).state_dict()) == ["wrap.weight", "wrap.bias"]


def test_pad_shortcut_extra_repr():
    assert "out_dim=8, stride=2" in repr(PadShortcut(8, 2))
    assert "p=0.3" in repr(DropPath(0.3))
    assert isinstance(ReZero().weight, nn.Parameter)
