"""residual-kit's hyper-connections against the `hyper-connections` package (lucidrains) on the same branches.

    pip install -e ".[bench]"   # hyper-connections, an optional benchmark dependency
    python -m benchmarks.hyper_connections_step [--batch-size 32] [--rounds 5] [--threads 2] [--no-compile]
        [--layers 8] [--dim 128] [--streams 4] [--tokens 64]

Both wrap the same branches (LayerNorm, then an MLP of 4x width; the same weights copied), with 4 dynamic
streams, and take the same input, target and AdamW; a training step (forward, mean-square loss, backward,
optimiser) is timed in interleaved rounds. The ratio is residual-kit / the package (below 1.00: ours is faster).
The package folds the streams into the batch and normalises each stream with RMSNorm; ours keeps a stream axis
and normalises with LayerNorm, as the paper; both add a static and a tanh-scaled dynamic part.
"""

from __future__ import annotations

import importlib.util
import sys

import torch
from torch import nn

from benchmarks.timing import adamw_steps, compare, default_device, parser, print_report
from residual_kit import Residual
from residual_kit.stack import HyperConnections


def mlp(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))


class Theirs(nn.Module):
    """The package's hyper-connections around pre-norm branches, expand and reduce included."""

    def __init__(self, branches: list[nn.Module], dim: int, streams: int) -> None:
        super().__init__()
        from hyper_connections import get_init_and_expand_reduce_stream_functions

        init, self.expand, self.reduce = get_init_and_expand_reduce_stream_functions(streams)
        self.layers = nn.ModuleList([init(dim=dim, branch=b, layer_index=i) for i, b in enumerate(branches)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.expand(x)
        for layer in self.layers:
            x = layer(x)
        return self.reduce(x)


def main() -> None:
    p = parser(__doc__)
    p.set_defaults(batch_size=32)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--tokens", type=int, default=64)
    args = p.parse_args()
    if importlib.util.find_spec("hyper_connections") is None:
        print('hyper-connections is not installed: pip install -e ".[bench]" to run this comparison')
        sys.exit(0)
    device = default_device()
    torch.manual_seed(0)
    mlps = [mlp(args.dim) for _ in range(args.layers)]
    ours = HyperConnections([Residual(m, placement="pre", dim=args.dim) for m in mlps], args.dim, args.streams)
    theirs = Theirs([nn.Sequential(nn.LayerNorm(args.dim), mlp(args.dim)) for _ in range(args.layers)], args.dim,
                    args.streams)  # fmt: skip
    for a, b in zip(mlps, theirs.layers, strict=True):
        b.branch[1].load_state_dict(a.state_dict())  # the same branch weights
    ours, theirs = ours.to(device), theirs.to(device)
    x = torch.randn(args.batch_size, args.tokens, args.dim, device=device)
    target = torch.randn_like(x)
    counts = [sum(p.numel() for p in m.parameters()) for m in (ours, theirs)]
    print(f"device={device}  threads={args.threads or torch.get_num_threads()}  batch={args.batch_size}x"
          f"{args.tokens}  layers={args.layers}  dim={args.dim}  streams={args.streams}  "
          f"params residual-kit={counts[0]:,} hyper-connections={counts[1]:,}")  # fmt: skip
    modes = [("eager", ours, theirs)]
    if not args.no_compile:
        modes.append(("compiled", torch.compile(ours), torch.compile(theirs)))
    for mode, a, b in modes:
        steps = adamw_steps({"hyper-connections": b, "residual-kit": a}, lambda m: (m(x) - target).pow(2).mean())
        print_report(f"{mode} training step:", compare(steps, "hyper-connections", args.rounds,
                                                       num_threads=args.threads))  # fmt: skip


if __name__ == "__main__":
    main()
