"""What each stack-level residual design costs against the pre-norm GPT, at equal width and depth.

    python -m benchmarks.stack_overhead [--batch-size 128] [--rounds 5] [--threads 2] [--no-compile]
        [--layers 4] [--dim 128] [--block-size 13] [--designs hyper mhc]

The GPT of `tasks.transformer` at its default size (4 layers, width 128, 4 heads, 13 tokens), once per design of
the arena (tasks/lab/arena/designs.py), each with its own initialisation, against pre-norm. A training step is
forward, cross-entropy, backward and AdamW, timed with `torch.utils.benchmark` in interleaved rounds; ratios are
to pre-norm (median, min-max over rounds), with the parameter ratio.
"""

from __future__ import annotations

import torch

from benchmarks.timing import adamw_steps, compare, default_device, lm_loss, parser, print_report
from residual_kit.models.gpt import GPT, GPTConfig
from tasks.lab.arena.designs import DESIGNS as ARENA

DESIGNS = {"pre-norm": ARENA["pre"].gpt_options()} | {
    name: design.gpt_options() for name, design in ARENA.items() if name != "pre"
}


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--block-size", type=int, default=13)
    p.add_argument("--designs", nargs="+", choices=list(DESIGNS)[1:], default=list(DESIGNS)[1:],
                   help="arena designs to time against pre-norm (default: all)")  # fmt: skip
    args = p.parse_args()
    device = default_device()
    idx = torch.randint(0, 16, (args.batch_size, args.block_size), device=device)
    nets = {}
    for name, options in DESIGNS.items():
        if name != "pre-norm" and name not in args.designs:
            continue
        torch.manual_seed(0)
        config = GPTConfig(16, args.block_size, layers=args.layers, dim=args.dim, heads=4, **options)
        nets[name] = GPT(config).to(device).train()
    params = {name: sum(p.numel() for p in net.parameters()) for name, net in nets.items()}
    print(f"device={device}  threads={args.threads or torch.get_num_threads()}  batch={args.batch_size}  "
          f"layers={args.layers}  dim={args.dim}  tokens={args.block_size}")  # fmt: skip
    for name, count in params.items():
        print(f"  {name:<28}{count:>10,} parameters  ({count / params['pre-norm']:.3f}x)")
    modes = [("eager", nets)]
    if not args.no_compile:
        modes.append(("compiled", {name: torch.compile(net) for name, net in nets.items()}))
    for mode, models in modes:
        steps = adamw_steps(models, lm_loss(idx))
        print_report(f"{mode} training step:", compare(steps, "pre-norm", args.rounds, num_threads=args.threads))


if __name__ == "__main__":
    main()
