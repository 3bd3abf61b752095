"""The residual designs of 2025-26 (and ResiDual, GTrXL's gate), each against its paper's equation, at init where
the paper says what it is at init; and a design registered from outside the package, used everywhere by its name."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from residual_kit import Residual
from residual_kit.models import GPTConfig, LSTMConfig
from residual_kit.norm import DynamicErf
from residual_kit.stack import (
    STACKS,
    AttentionResiduals,
    Backout,
    CanonLayers,
    PermutationHyperConnections,
    ResiDual,
    sinkhorn,
)
from tasks.lab.arena.designs import DESIGNS, register_design
from tasks.lab.arena.run import choose_designs
from tasks.lab.arena.train import TEST, train_design

D, L = 8, 4


def layers(seed: int = 0, n: int = L, placement: str | None = "pre") -> list[Residual]:
    torch.manual_seed(seed)
    return [Residual(nn.Sequential(nn.Linear(D, D), nn.GELU()), placement=placement, dim=D) for _ in range(n)]


def test_orthogonal_update_adds_only_the_branch_part_orthogonal_to_the_stream():
    block = Residual(nn.Linear(D, D), merge="orthogonal", dim=D)
    x = torch.randn(2, 5, D)
    f = block.wrap(x)
    expected = x + f - ((f * x).sum(-1, keepdim=True) / ((x * x).sum(-1, keepdim=True) + 1e-6)) * x
    torch.testing.assert_close(block(x), expected)
    torch.testing.assert_close(((block(x) - x) * x).sum(-1), torch.zeros(2, 5), atol=1e-4, rtol=0)  # ⟨Δ, x⟩ = 0


def test_gru_gate_is_a_grucell_with_the_stream_as_its_state():
    block = Residual(nn.Linear(D, D), merge="gru", dim=D)
    x = torch.randn(2, 5, D)
    expected = block.merge.gru(block.wrap(x).reshape(-1, D), x.reshape(-1, D)).view(2, 5, D)
    torch.testing.assert_close(block(x), expected)


def test_derf_is_gamma_erf_alpha_x_plus_shift_plus_beta_from_its_papers_init():
    derf = DynamicErf(D)
    assert derf.alpha.item() == 0.5 and derf.shift.item() == 0.0
    with torch.no_grad():
        derf.weight.normal_(), derf.bias.normal_(), derf.shift.fill_(0.3)
    x = torch.randn(2, 3, D)
    torch.testing.assert_close(derf(x), derf.weight * torch.erf(0.5 * x + 0.3) + derf.bias)


def test_layernorm_scaling_scales_layer_ls_norm_by_one_over_sqrt_l_and_completep_each_branch_by_one_over_depth():
    gpt = GPTConfig(layers=4, dim=16, heads=2, placement="lns").build()
    x = torch.randn(2, 3, 16)
    for l, block in enumerate(gpt.blocks, start=1):  # noqa: E741
        for sub in (block.attn, block.mlp):
            assert sub.placement == "pre"
            torch.testing.assert_close(sub.pre_norm(x), sub.pre_norm.norm(x) / math.sqrt(l))
    completep = GPTConfig(layers=4, dim=16, heads=2, scale="completep").build()
    assert all(b.mlp.scale.value == 0.25 for b in completep.blocks)


def test_mix_ln_floors_its_quarter():
    gpt = GPTConfig(layers=7, dim=16, heads=2, placement="mix").build()
    assert [b.attn.placement for b in gpt.blocks] == ["post"] + ["pre"] * 6  # floor(7 / 4) = 1, not round's 2


@pytest.mark.parametrize("dynamic", [False, True])
def test_mhc_lite_mixes_exactly_doubly_stochastic_and_starts_at_mhcs_diagonal(dynamic):
    design = PermutationHyperConnections(layers(), D, streams=4, dynamic=dynamic)
    assert design.perms.shape == (24, 4, 4) and torch.equal(design.perms[0], torch.eye(4))
    start = sinkhorn(4 * torch.eye(4), 30)
    with torch.no_grad():
        width, _ = design.connections(0, torch.randn(3, 4, D))
    diagonal = width[..., 1:].diagonal(dim1=-2, dim2=-1)
    torch.testing.assert_close(diagonal, start.diagonal().expand_as(diagonal))
    with torch.no_grad():
        design.mix.normal_(0, 3)
        width, _ = design.connections(1, torch.randn(3, 4, D))
    mix = width[..., 1:]
    torch.testing.assert_close(mix.sum(-1), torch.ones_like(mix.sum(-1)), atol=1e-6, rtol=0)  # exact, no iterations
    torch.testing.assert_close(mix.sum(-2), torch.ones_like(mix.sum(-2)), atol=1e-6, rtol=0)


def test_backout_takes_lambda_times_the_kept_stream_out_at_the_end():
    fs, x = layers(), torch.randn(2, 3, D)
    design = Backout(fs, at=3)
    kept = fs[2](fs[1](fs[0](x)))
    torch.testing.assert_close(design(x), fs[3](kept))  # λ = 0: the plain stack
    with torch.no_grad():
        design.weight.fill_(0.5)
    torch.testing.assert_close(design(x), fs[3](kept) - 0.5 * kept)
    assert Backout(layers(n=11)).at == 8  # ⌈2L/3⌉: 8 of the record's 11 layers


def test_resi_dual_keeps_a_post_norm_and_a_pre_norm_stream():
    fs, x = layers(placement=None), torch.randn(2, 3, D)
    design = ResiDual(fs, D)
    a, d = x, x
    for f, norm in zip(fs, design.post_norms, strict=True):
        out = f.wrap(a)
        a, d = norm(a + out), d + out
    torch.testing.assert_close(design(x), a + design.dual_norm(d))
    with pytest.raises(ValueError, match="placement=None"):
        ResiDual(layers(), D)


def test_canon_adds_a_causal_depthwise_convolution_after_each_pre_norm():
    fs, x = layers(), torch.randn(2, 6, D)
    design = CanonLayers(fs, D)
    canon = fs[0].pre_norm[1]
    h = torch.randn(2, 6, D)
    w = canon.conv.weight[:, 0]  # (D, 4): w[:, 3] reads position t, w[:, 0] position t - 3
    expected = h.clone()
    for t in range(6):
        for i in range(4):
            if t - i >= 0:
                expected[:, t] += w[:, 3 - i] * h[:, t - i]
    torch.testing.assert_close(canon(h), expected)
    changed = h.clone()
    changed[:, 4:] += 1  # the future cannot reach the past
    torch.testing.assert_close(canon(changed)[:, :4], canon(h)[:, :4])
    expected_x = x
    for f in fs:
        expected_x = expected_x + f.wrap(f.pre_norm[1](f.pre_norm[0](expected_x)))
    torch.testing.assert_close(design(x), expected_x)


def test_block_attention_residuals_attend_over_block_sums_and_the_partial_block():
    fs, x = layers(), torch.randn(2, 3, D)
    design = AttentionResiduals(fs, D, blocks=2)  # blocks of 2 sub-layers; queries 0: plain averages
    v1 = fs[0].branch(x)[0]
    h1 = (x + v1) / 2  # sources: embeddings, the partial block {v1}
    v2 = fs[1].branch(h1)[0]
    h2 = (x + v1 + v2) / 2  # the block {v1, v2} is finished: its sum is one source
    v3 = fs[2].branch(h2)[0]
    h3 = (x + (v1 + v2) + v3) / 3
    v4 = fs[3].branch(h3)[0]
    torch.testing.assert_close(design(x), (x + (v1 + v2) + (v3 + v4)) / 3)
    full = AttentionResiduals(fs, D)
    assert full.size == 1 and AttentionResiduals(fs, D, blocks=L).size == 1  # one sub-layer a block: the full form


class Halve(nn.Module):
    """A toy design from outside the package: y = (plain stack) / 2."""

    def __init__(self, layers: list[nn.Module], factor: float = 0.5) -> None:
        super().__init__()
        self.layers, self.factor = nn.ModuleList(layers), factor

    def forward(self, x: torch.Tensor, **kwargs: object) -> torch.Tensor:
        for layer in self.layers:
            out = layer(x, **kwargs)
            x = out[0] if isinstance(out, tuple) else out
        return self.factor * x


def test_a_design_registered_from_outside_runs_in_the_gpt_the_lstm_stack_and_the_arena(tmp_path):
    register_design("toy-halve", Halve, "a toy", "nothing")
    try:
        idx = torch.randint(0, 16, (2, 8))
        gpt = GPTConfig(16, 8, layers=2, dim=16, heads=2, stack="toy-halve", stack_options={"factor": 0.25}).build()
        assert isinstance(gpt.blocks, Halve) and gpt.blocks.factor == 0.25 and gpt(idx).shape == (2, 8, 16)
        lstm = LSTMConfig(input_size=6, dim=8, layers=3, stack="toy-halve").build()
        assert isinstance(lstm.stack, Halve) and lstm(torch.randn(2, 5, 6)).shape == (2, 5, 8)
        text = tmp_path / "corpus.txt"
        text.write_text("def add(a, b):\n    return a + b\n" * 300)
        run = {"design": "toy-halve", "depth": 1, "seed": 0, "lr": 1e-3, "steps": 2, "dim": 16, "heads": 2}
        run |= {"block_size": 16, "batch_size": 4, "warmup": 0.1, "target": 2.0, "precision": None, "compile": False}
        for family in ("gpt", "lstm"):  # the arena's own training of one run, in both families
            result = train_design({**run, "family": family, "text_file": str(text)})
            assert result["design"] == "toy-halve" and result["family"] == family and math.isfinite(result[TEST])
        assert choose_designs(["toy-halve"]) == ["pre", "toy-halve"] == choose_designs(["toy-halve"], "lstm")
        assert "toy-halve" in choose_designs("all", "gru")
    finally:
        STACKS.pop("toy-halve"), DESIGNS.pop("toy-halve")
