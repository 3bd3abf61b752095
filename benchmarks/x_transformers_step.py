"""residual-kit's GPT against x-transformers' `Decoder` at equal size: time per training step.

    pip install -e ".[bench]"   # x-transformers, an optional benchmark dependency
    python -m benchmarks.x_transformers_step [--batch-size 128] [--rounds 5] [--threads 2] [--no-compile]

The default size of `tasks.transformer`: 4 layers, width 128, 4 heads of 32, MLP 4x, 13 tokens of a
16-token vocabulary, pre-norm, absolute positions, tied embeddings on our side. x-transformers' nets
differ in detail (no biases in attention, no LayerNorm affine), so the weights are not shared: the two
are the same size (printed), take the same batch and AdamW, and are timed in interleaved rounds; the
ratio is residual-kit / x-transformers (below 1.00: ours is faster).
"""

from __future__ import annotations

import importlib.util
import sys

import torch

from benchmarks.timing import adamw_steps, compare, default_device, lm_loss, parser, print_report
from residual_kit.models.gpt import GPT, GPTConfig


def main() -> None:
    args = parser(__doc__).parse_args()
    if importlib.util.find_spec("x_transformers") is None:
        print('x-transformers is not installed: pip install -e ".[bench]" to run this comparison')
        sys.exit(0)
    from x_transformers import Decoder, TransformerWrapper

    device = default_device()
    torch.manual_seed(0)
    c = GPTConfig(vocab_size=16, block_size=13, layers=4, dim=128, heads=4)
    ours = GPT(c).to(device)
    decoder = Decoder(dim=c.dim, depth=c.layers, heads=c.heads, attn_dim_head=c.dim // c.heads, ff_mult=c.mlp_ratio)
    theirs = TransformerWrapper(num_tokens=c.vocab_size, max_seq_len=c.block_size, attn_layers=decoder).to(device)
    idx = torch.randint(0, c.vocab_size, (args.batch_size, c.block_size), device=device)
    counts = [sum(p.numel() for p in m.parameters()) for m in (ours, theirs)]
    print(f"device={device}  threads={args.threads or torch.get_num_threads()}  batch={args.batch_size}  "
          f"params residual-kit={counts[0]:,} x-transformers={counts[1]:,}")  # fmt: skip
    modes = [("eager", ours, theirs)]
    if not args.no_compile:
        modes.append(("compiled", torch.compile(ours), torch.compile(theirs)))
    for mode, a, b in modes:
        steps = adamw_steps({"x-transformers": b, "residual-kit": a}, lm_loss(idx))
        print_report(f"{mode} training step:", compare(steps, "x-transformers", args.rounds, num_threads=args.threads))


if __name__ == "__main__":
    main()
