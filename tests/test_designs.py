"""The residual designs of today's records and papers, each against its equation (at init where the paper says
what it is at init), and each under torch.compile(fullgraph=True)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from residual_kit import Residual
from residual_kit.models import GANConfig, GPTConfig
from residual_kit.norm import DynamicTanh
from residual_kit.stack import (
    AttentionResiduals,
    DepthWeightedAverage,
    DynamicDense,
    EmbeddingMix,
    FracConnections,
    ManifoldHyperConnections,
    UNetSkips,
    build_stack,
    sinkhorn,
)
from residual_kit.stack.hyper import _sinkhorn_iterations
from tasks.lab.arena.designs import DESIGNS

D, L = 8, 4


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()  # each compiled model is a new code path: no recompile limit across tests


def layers(seed: int = 0, n: int = L) -> list[Residual]:
    torch.manual_seed(seed)
    return [
        Residual(nn.Sequential(nn.Linear(D, 2 * D), nn.GELU(), nn.Linear(2 * D, D)), placement="pre", dim=D)
        for _ in range(n)
    ]


def plain(fs: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    for f in fs:
        x = f(x)
    return x


def test_embedding_mix_starts_as_the_plain_stack_and_mixes_x0_in():
    fs, x = layers(), torch.randn(2, 3, D)
    design = EmbeddingMix(fs)
    x0 = x / x.pow(2).mean(-1, keepdim=True).add(torch.finfo(x.dtype).eps).sqrt()  # modded-nanogpt's norm(embed)
    torch.testing.assert_close(design(x), plain(fs, x0))
    with torch.no_grad():
        design.mix.copy_(torch.tensor([[0.5, 2.0], [1.0, -1.0], [1.0, 0.0], [2.0, 0.5]]))
    expected = x0
    for (a, b), f in zip(design.mix, fs, strict=True):
        expected = f(a * expected + b * x0)
    torch.testing.assert_close(design(x), expected)


def test_unet_skips_add_the_mirrored_first_half_output_with_its_weight():
    fs, x = layers(n=5), torch.randn(2, 3, D)
    design = UNetSkips(fs)
    with torch.no_grad():
        design.weights.copy_(torch.tensor([0.3, 2.0]))
    x1 = fs[0](x)
    x2 = fs[1](x1)
    x3 = fs[2](x2)  # the middle layer: no skip
    x4 = fs[3](x3 + 2.0 * x2)
    x5 = fs[4](x4 + 0.3 * x1)
    torch.testing.assert_close(design(x), x5)


def test_dynamic_dense_starts_as_the_plain_stack_and_weights_outputs_per_position():
    fs, x = layers(), torch.randn(2, 3, D)
    design = DynamicDense(fs, D)
    torch.testing.assert_close(design(x), plain(fs, x))
    with torch.no_grad():
        for w2 in design.w2:
            w2.weight.normal_()
    outputs, h = [x], x
    for i, f in enumerate(fs):
        out = f(h)
        outputs.append(out)
        a = design.static[i] + design.w2[i](F.gelu(design.w1[i](design.norms[i](out))))  # (2, 3, i + 2)
        h = sum(a[..., j : j + 1] * outputs[j] for j in range(i + 2))
    torch.testing.assert_close(design(x), h)


def test_attention_residuals_start_as_the_average_and_attend_over_earlier_outputs():
    fs, x = layers(), torch.randn(2, 3, D)
    design = AttentionResiduals(fs, D)
    values = [x]
    for f in fs:  # zero pseudo-queries: each read is the plain average of what came before
        values.append(f.branch(torch.stack(values).mean(0))[0])
    torch.testing.assert_close(design(x), torch.stack(values).mean(0))
    with torch.no_grad():
        design.queries.normal_()
    values = [x]
    for l in range(L + 1):  # noqa: E741
        keys = torch.stack([v / v.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt() for v in values])  # RMSNorm
        h = ((keys @ design.queries[l]).softmax(0).unsqueeze(-1) * torch.stack(values)).sum(0)
        if l < L:
            values.append(fs[l].branch(h)[0])
    torch.testing.assert_close(design(x), h, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="stack='attnres' merges"):
        AttentionResiduals([Residual(nn.Linear(D, D), placement="post", dim=D)], D)


@pytest.mark.parametrize("dynamic", [False, True])
def test_frac_connections_start_as_the_plain_stack(dynamic):
    fs, x = layers(), torch.randn(2, 3, D, dtype=torch.float64)
    fs = [f.double() for f in fs]
    torch.testing.assert_close(FracConnections(fs, D, fractions=2, dynamic=dynamic).double()(x), plain(fs, x))


def test_static_frac_connections_mix_fractions_as_the_equation_says():
    torch.manual_seed(0)
    f = nn.Linear(D, D).double()
    fc = FracConnections([f], D, fractions=2, dynamic=False).double()
    gamma, a, beta = (
        torch.tensor([[0.2, 1.0], [0.7, -0.5]]),
        torch.tensor([[1.5, 0.1], [0.3, 0.9]]),
        torch.tensor([2.0, -1.0]),
    )
    with torch.no_grad():
        fc.width.copy_(torch.cat([gamma, a], dim=1).unsqueeze(0))
        fc.write.copy_(beta.unsqueeze(0))
    x = torch.randn(4, D, dtype=torch.float64)
    frac = x.unflatten(-1, (2, -1))  # (4, 2, D/2)
    read = torch.einsum("jm,bjd->bmd", gamma.double(), frac).flatten(-2)
    out = f(read).unflatten(-1, (2, -1))
    mixed = torch.einsum("jm,bjd->bmd", a.double(), frac)
    torch.testing.assert_close(fc(x), (mixed + beta.double()[:, None] * out).flatten(-2))


def test_mhc_connections_follow_the_papers_parametrisation():
    torch.manual_seed(0)
    n = 4
    mhc = ManifoldHyperConnections(layers(), D, streams=n).double()
    with torch.no_grad():
        mhc.phi.normal_()
        mhc.alpha.normal_()
    streams = torch.randn(3, n, D, dtype=torch.float64)
    x = mhc.norms[1](streams.flatten(-2))  # RMSNorm of the flattened n*D streams
    d = x @ mhc.phi[1].T
    pre = mhc.alpha[1, 0] * d[:, :n] + mhc.read[1]
    post = mhc.alpha[1, 1] * d[:, n : 2 * n] + mhc.write[1]
    res = mhc.alpha[1, 2] * d[:, 2 * n :].view(3, n, n) + mhc.mix[1]  # no tanh
    width, write = mhc.connections(1, streams)
    torch.testing.assert_close(width[..., 0], torch.sigmoid(pre))
    torch.testing.assert_close(width[..., 1:], _sinkhorn_iterations(res, mhc.iters))
    torch.testing.assert_close(write, 2 * torch.sigmoid(post))


@pytest.mark.parametrize("scale", [3.0, 6.0, 20.0, 60.0])
def test_sinkhorn_backward_matches_the_unrolled_one_near_permutation_matrices(scale):
    """Near a permutation the implicit system turns singular; the gradient stays finite and matches autograd
    through enough iterations to converge."""
    torch.manual_seed(0)
    perm = torch.eye(4)[torch.randperm(4)]
    logits = (scale * perm + 0.3 * torch.randn(16, 4, 4)).double().requires_grad_()
    weights = torch.randn(16, 4, 4, dtype=torch.double)
    (implicit,) = torch.autograd.grad((sinkhorn(logits, 3000) * weights).sum(), logits)
    (unrolled,) = torch.autograd.grad((_sinkhorn_iterations(logits, 3000) * weights).sum(), logits)
    torch.testing.assert_close(implicit, unrolled, rtol=1e-4, atol=1e-7)  # near 0 once saturated
    single = logits.detach().float().requires_grad_()
    (grad,) = torch.autograd.grad((sinkhorn(single) * weights.float()).sum(), single)
    assert torch.isfinite(grad).all()
    p = sinkhorn(torch.full((2, 4, 4), -1e4) + 1e4 * torch.eye(4))  # whole rows that underflow: no 0/0
    assert torch.isfinite(p).all()


def test_denseformer_dilation_and_period_read_every_kth_output_every_pth_layer():
    fs, x = layers(), torch.randn(2, 3, D)
    design = DepthWeightedAverage(fs, dilation=2, period=2)
    assert design.reads == [[0, 2], [0, 2, 4]]  # after layers 2 and 4: X_j with (i + 1 - j) even
    torch.testing.assert_close(design(x), plain(fs, x))
    with torch.no_grad():
        design.alphas[0].copy_(torch.tensor([0.5, 0.5]))
    x1 = fs[0](x)
    x2 = fs[1](x1)
    h = 0.5 * x + 0.5 * x2
    torch.testing.assert_close(design(x), fs[3](fs[2](h)))


def test_laurel_merges_start_as_the_plain_residual_and_follow_their_equations():
    x = torch.randn(2, 3, D)
    rw = Residual(nn.Linear(D, D), merge="laurel_rw", dim=D)
    lr = Residual(nn.Linear(D, D), merge="laurel_lr", dim=D)
    for block in (rw, lr):
        torch.testing.assert_close(block(x), x + block.wrap(x))
    with torch.no_grad():
        rw.merge.weights.copy_(torch.tensor([-8.0, 8.0]))  # α = 2σ(-8) near 0, β = 2σ(8) near 2: bounded in (0, 2)
        lr.merge.up.weight.normal_()
    alpha, beta = 2 * torch.sigmoid(torch.tensor(-8.0)), 2 * torch.sigmoid(torch.tensor(8.0))
    torch.testing.assert_close(rw(x), alpha * rw.wrap(x) + beta * x)
    assert 0 < alpha < 0.001 and 1.999 < beta < 2
    torch.testing.assert_close(lr(x), lr.wrap(x) + x + lr.merge.up(lr.merge.down(x)))
    assert rw.formula() == "y = α·f(x) + β·x" and lr.formula() == "y = f(x) + x + BA·x"


def test_dynamic_tanh_is_gamma_tanh_alpha_x_plus_beta():
    dyt = DynamicTanh(D)
    with torch.no_grad():
        dyt.weight.normal_()
        dyt.bias.normal_()
    x = torch.randn(2, 3, D)
    torch.testing.assert_close(dyt(x), dyt.weight * torch.tanh(0.5 * x) + dyt.bias)
    block = Residual(nn.Linear(D, D), placement="pre", norm="dyt", dim=D)
    assert isinstance(block.pre_norm, DynamicTanh)


def test_mix_ln_puts_post_norm_in_the_first_quarter_of_the_layers():
    gpt = GPTConfig(layers=8, dim=16, heads=2, placement="mix").build()
    placements = [[b.attn.placement, b.mlp.placement] for b in gpt.blocks]
    assert placements == [["post", "post"]] * 2 + [["pre", "pre"]] * 6
    assert not isinstance(gpt.norm, nn.Identity)  # the pre-norm layers leave the stream un-normed


def test_learned_value_residual_starts_as_the_half_mix():
    torch.manual_seed(0)
    fixed = GPTConfig(layers=3, dim=16, heads=2, value_residual=0.5).build().eval()
    learned = GPTConfig(layers=3, dim=16, heads=2, value_residual="learned").build().eval()
    state = {k: v for k, v in learned.state_dict().items() if "value_weights" not in k}
    learned.load_state_dict({**state, **fixed.state_dict()}, strict=False)
    idx = torch.randint(0, 16, (2, 8))
    torch.testing.assert_close(learned(idx), fixed(idx))
    assert sum("value_weights" in k for k in learned.state_dict()) == 2  # every attention after the first


@pytest.mark.parametrize("design", list(DESIGNS))
def test_every_arena_design_compiles_fullgraph_in_the_gpt(design):
    gpt = GPTConfig(layers=2, dim=16, heads=2, **DESIGNS[design].gpt_options()).build().eval()
    idx = torch.randint(0, 16, (2, 8))
    torch.testing.assert_close(torch.compile(gpt, fullgraph=True, backend="eager")(idx), gpt(idx))


GAN_DESIGNS = ["pre", "post", "sandwich", "mix-ln", "lns", "completep", "dyt", "derf", "rezero", "layerscale",
               "laurel", "orthogonal", "gru-gate"]  # fmt: skip


@pytest.mark.parametrize("design", list(DESIGNS))
def test_every_block_level_design_trains_in_the_gan_and_the_others_are_refused_in_one_line(design):
    """The GAN takes a design's block options; a stack design, one defined on attention or a Transformer's
    projections, or Fixup (no norms), is refused by the design, and LAuReL-LR by the GAN (its blocks change width)."""
    if design not in GAN_DESIGNS:
        with pytest.raises(ValueError) as refused:
            GANConfig(z_dim=8, dim=8, **DESIGNS[design].net_options("gan")).build(conditions=10, projection=True)
        assert "\n" not in str(refused.value) and ("no faithful form in the gan" in str(refused.value)
                                                   or design == "laurel-lr")  # fmt: skip
        return
    torch.manual_seed(0)
    gan = GANConfig(z_dim=8, dim=8, **DESIGNS[design].net_options("gan")).build(conditions=10, projection=True)
    labels = torch.tensor([1, 2, 3])
    fake = gan.generator(torch.randn(3, 8), labels)
    gan.discriminator(fake, labels).mean().backward()
    grads = [p.grad for p in gan.generator.parameters() if p.requires_grad]
    assert fake.shape == (3, 1, 28, 28) and all(g is not None and g.isfinite().all() for g in grads)


def test_designs_that_merge_themselves_refuse_a_merge_option_and_the_rest_take_it():
    for stack in ("frac", "attnres"):
        with pytest.raises(ValueError, match="merges the residual streams itself"):
            build_stack(stack, [Residual(nn.Linear(D, D), merge="laurel_rw", dim=D)], D)
    for stack in ("x0", "unet", "mudd"):
        build_stack(stack, [Residual(nn.Linear(D, D), merge="laurel_rw", dim=D) for _ in range(2)], D)
