"""What each residual design of the arena costs against pre-norm, at equal width and depth, in the GPT or in the
recurrent language model.

    python -m benchmarks.stack_overhead [--family gpt|lstm|gru] [--batch-size N] [--rounds 5] [--threads 2]
        [--no-compile] [--layers N] [--dim 128] [--block-size N] [--designs hyper mhc]

The GPT of `tasks.transformer` at its default size (4 layers, width 128, 4 heads, 13 tokens, batch 128), or the
arena's recurrent language model (`--family lstm` or `gru`: 6 layers, width 128, 128 bytes, batch 16), once per
design of the arena (tasks/lab/arena/designs.py) that has a form in the family, each with its own initialisation,
against pre-norm. A training step is forward, cross-entropy, backward and AdamW, timed with
`torch.utils.benchmark` in interleaved rounds; ratios are to pre-norm (median, min-max over rounds), with the
parameter ratio.
"""

from __future__ import annotations

import torch

from benchmarks.timing import adamw_steps, compare, default_device, lm_loss, parser, print_report
from tasks.lab.arena.designs import FAMILIES, designs_of
from tasks.lab.arena.train import net_config

SIZES = {
    "gpt": {"layers": 4, "block_size": 13, "batch_size": 128},
    "recurrent": {"layers": 6, "block_size": 128, "batch_size": 16},
}


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--family", choices=FAMILIES, default="gpt")
    p.add_argument("--layers", type=int, default=None, help="default: 4 for the GPT, 6 for the recurrent families")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--block-size", type=int, default=None, help="tokens per sequence; default: 13 (GPT), 128")
    p.add_argument("--designs", nargs="+", default=None, help="arena designs to time against pre-norm (default: all)")
    p.set_defaults(batch_size=None)
    args = p.parse_args()
    size = SIZES["gpt" if args.family == "gpt" else "recurrent"]
    layers, block_size = args.layers or size["layers"], args.block_size or size["block_size"]
    batch_size = args.batch_size or size["batch_size"]
    chosen = [d for d in designs_of(args.family) if d != "pre" and (args.designs is None or d in args.designs)]
    unknown = sorted(set(args.designs or []) - set(chosen))
    if unknown:
        p.error(f"{unknown[0]!r} is not a design of the {args.family} family: choose from {designs_of(args.family)}")
    device = default_device()
    idx = torch.randint(0, 16, (batch_size, block_size), device=device)
    nets = {}
    for name in ["pre", *chosen]:
        torch.manual_seed(0)
        config = net_config(name, layers, args.dim, 4, block_size, args.family, vocab_size=16)
        nets[name] = config.build().to(device).train()
    params = {name: sum(p.numel() for p in net.parameters()) for name, net in nets.items()}
    print(f"family={args.family}  device={device}  threads={args.threads or torch.get_num_threads()}  "
          f"batch={batch_size}  layers={layers}  dim={args.dim}  tokens={block_size}")  # fmt: skip
    for name, count in params.items():
        print(f"  {name:<28}{count:>10,} parameters  ({count / params['pre']:.3f}x)")
    modes = [("eager", nets)]
    if not args.no_compile:
        modes.append(("compiled", {name: torch.compile(net) for name, net in nets.items()}))
    for mode, models in modes:
        steps = adamw_steps(models, lm_loss(idx))
        print_report(f"{mode} training step:", compare(steps, "pre", args.rounds, num_threads=args.threads))


if __name__ == "__main__":
    main()
