"""Stack-level residual designs against their papers' equations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from residual_kit import Residual
from residual_kit.stack import DepthWeightedAverage, HyperConnections, ManifoldHyperConnections, sinkhorn
from residual_kit.stack.hyper import _sinkhorn_iterations
from tasks.lab.arena.designs import DESIGNS as ARENA

D, L = 8, 4


def branches(seed: int = 0) -> list[nn.Module]:
    torch.manual_seed(seed)
    return [nn.Sequential(nn.LayerNorm(D), nn.Linear(D, 2 * D), nn.GELU(), nn.Linear(2 * D, D)) for _ in range(L)]


def pre_norm_stack(fs: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    for f in fs:
        x = x + f(x)  # x_(k+1) = x_k + T_k(LN(x_k)): the LN is in the branch
    return x


@pytest.mark.parametrize("dynamic", [False, True])
@pytest.mark.parametrize("streams", [1, 4])
def test_hyper_connections_at_init_are_the_pre_norm_stack(dynamic, streams):
    """Eq. 14's initialisation: every stream carries x_k, so the streams sum to n x_L; gradients agree."""
    x = torch.randn(3, 5, D, dtype=torch.float64)
    plain_fs, hc_fs = branches(), branches()
    hc = HyperConnections(hc_fs, D, streams=streams, dynamic=dynamic).double()
    plain_fs = [f.double() for f in plain_fs]
    y_plain = pre_norm_stack(plain_fs, x)
    y_hc = hc(x)
    torch.testing.assert_close(y_hc, streams * y_plain)
    y_plain.pow(2).sum().backward()
    (y_hc / streams).pow(2).sum().backward()
    for a, b in zip(plain_fs, hc_fs, strict=True):
        for p, q in zip(a.parameters(), b.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad)


def test_static_hyper_connections_follow_eq_3_to_5():
    """One layer, n = 2, chosen A_m, A_r, B: h = A_m^T H, H' = B^T T(h) + A_r^T H, output sum over streams."""
    torch.manual_seed(0)
    f = nn.Linear(D, D).double()
    hc = HyperConnections([f], D, streams=2, dynamic=False).double()
    with torch.no_grad():
        hc.read.copy_(torch.tensor([[0.3, 0.7]]))
        hc.mix.copy_(torch.tensor([[[0.5, 2.0], [-1.0, 1.5]]]))
        hc.write.copy_(torch.tensor([[0.2, 1.1]]))
    x = torch.randn(4, D, dtype=torch.float64)
    h0 = torch.stack([x, x], dim=-2)  # (4, 2, D)
    h = 0.3 * h0[:, 0] + 0.7 * h0[:, 1]
    t = f(h)
    new0 = 0.2 * t + 0.5 * h0[:, 0] + -1.0 * h0[:, 1]  # A_r^T H: column j mixes the streams into stream j
    new1 = 1.1 * t + 2.0 * h0[:, 0] + 1.5 * h0[:, 1]
    torch.testing.assert_close(hc(x), new0 + new1)


def test_dynamic_hyper_connections_depend_on_the_input_once_trained():
    hc = HyperConnections(branches(), D, streams=4, dynamic=True)
    with torch.no_grad():
        hc.w_dynamic[:, 1:-1].normal_()  # W_r
    x = torch.randn(2, 3, D)
    width, _ = hc.connections(0, x.unsqueeze(-2).expand(2, 3, 4, D) + torch.randn(2, 3, 4, D))
    mix = width[..., 1:]  # A_r
    assert mix.shape == (2, 3, 4, 4) and not torch.allclose(mix[0, 0], mix[1, 2])


def test_mhc_mixing_stays_doubly_stochastic_through_training():
    torch.manual_seed(0)
    mhc = ManifoldHyperConnections(branches(), D, streams=4, dynamic=True)
    opt = torch.optim.AdamW(mhc.parameters(), lr=0.01)  # the top of the arena's bracket; far larger rates push
    # the logits towards a permutation, where 30 Sinkhorn rounds converge more slowly
    x = torch.randn(6, 5, D)
    for _ in range(10):
        opt.zero_grad()
        mhc(x).pow(2).mean().backward()
        opt.step()
        for k in range(L):
            streams = x.unsqueeze(-2).expand(6, 5, 4, D) + 0.1 * torch.randn(6, 5, 4, D)
            width, write = mhc.connections(k, streams)
            read, mix = width[..., 0], width[..., 1:]  # A_m, A_r
            torch.testing.assert_close(mix.sum(-1), torch.ones_like(mix.sum(-1)), atol=1e-3, rtol=0)
            torch.testing.assert_close(mix.sum(-2), torch.ones_like(mix.sum(-2)), atol=1e-3, rtol=0)
            assert (read >= 0).all() and (write >= 0).all() and (mix >= 0).all()


def test_sinkhorn_gives_a_doubly_stochastic_matrix():
    m = sinkhorn(torch.randn(5, 5))
    torch.testing.assert_close(m.sum(0), torch.ones(5), atol=1e-3, rtol=0)
    torch.testing.assert_close(m.sum(1), torch.ones(5), atol=1e-3, rtol=0)


def test_sinkhorn_gradient_is_that_of_the_converged_projection():
    """The implicit backward equals autograd through the iterations, once they have converged."""
    torch.manual_seed(0)
    logits = (3 * torch.eye(4) + torch.randn(3, 4, 4)).double().requires_grad_()
    weights = torch.randn(3, 4, 4, dtype=torch.double)
    (implicit,) = torch.autograd.grad((sinkhorn(logits, 500) * weights).sum(), logits)
    (unrolled,) = torch.autograd.grad((_sinkhorn_iterations(logits, 500) * weights).sum(), logits)
    torch.testing.assert_close(implicit, unrolled)
    assert torch.autograd.gradcheck(lambda t: sinkhorn(t, 500), (logits[:1].detach().requires_grad_(),))


def test_denseformer_at_init_is_the_plain_stack_and_then_averages():
    torch.manual_seed(0)
    blocks = [Residual(nn.Linear(D, D), placement="pre", dim=D) for _ in range(L)]
    dwa = DepthWeightedAverage(blocks)
    x = torch.randn(2, 3, D)
    plain = x
    for b in blocks:
        plain = b(plain)
    torch.testing.assert_close(dwa(x), plain)
    with torch.no_grad():
        dwa.alphas[0].copy_(torch.tensor([0.25, 0.75]))  # x_1' = 0.25 X_0 + 0.75 X_1
    expected = 0.25 * x + 0.75 * blocks[0](x)
    for b in blocks[1:]:
        expected = b(expected)
    torch.testing.assert_close(dwa(x), expected)


@pytest.mark.parametrize("design", [HyperConnections, ManifoldHyperConnections, DepthWeightedAverage])
def test_each_design_compiles_fullgraph(design):
    stack = design(branches(), D) if design is not DepthWeightedAverage else design(branches())
    x = torch.randn(2, 3, D)
    torch.testing.assert_close(torch.compile(stack, fullgraph=True, backend="eager")(x), stack(x))


DDP_DESIGNS = {  # every stack design of the arena and its own initialisations, beside pre-norm
    name: design.gpt_options()
    for name, design in ARENA.items()
    if name in ("pre", "value-residual", "fixup") or "stack" in design.options
}


def _ddp_worker(rank: int, world: int, port: int, results: dict) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from residual_kit.models.gpt import GPT, GPTConfig

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        for name, options in DDP_DESIGNS.items():
            torch.manual_seed(0)  # the same weights on both ranks
            model = DistributedDataParallel(
                GPT(GPTConfig(vocab_size=16, block_size=8, layers=2, dim=16, heads=2, **options))
            )
            opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
            torch.manual_seed(1 + rank)  # different batches per rank
            for _ in range(2):
                idx = torch.randint(0, 16, (4, 8))
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(idx[:, :-1]).flatten(0, 1), idx[:, 1:].flatten()).backward()
                opt.step()
            flat = torch.cat([p.detach().flatten() for p in model.parameters()])
            gathered = [torch.empty_like(flat) for _ in range(world)]
            dist.all_gather(gathered, flat)
            if rank == 0:
                results[name] = (gathered[0] - gathered[1]).abs().max().item()
    finally:
        dist.destroy_process_group()


def test_every_stack_design_trains_under_ddp_with_synchronised_weights():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_ddp_worker, args=(2, port, results), nprocs=2, join=True)
        assert dict(results) == dict.fromkeys(DDP_DESIGNS, 0.0)
