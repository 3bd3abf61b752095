"""Does `Residual` cost anything in a Transformer? The GPT of `tasks.transformer` against a hand-written twin.

    python -m benchmarks.gpt_overhead [--batch-size 128] [--rounds 5] [--threads 2] [--no-compile]

The default size of `tasks.transformer` (4 layers, width 128, 4 heads, 13 tokens), pre-norm. The twin
(benchmarks/reference_gpt.py) loads the same weights; both give equal outputs before anything is timed.
A training step is forward, cross-entropy, backward and AdamW, timed with `torch.utils.benchmark` in
interleaved rounds; the ratio is residual-kit / hand-written (1.00 = no overhead), with its min-max.
"""

from __future__ import annotations

import torch

from benchmarks.reference_gpt import HandWrittenGPT
from benchmarks.timing import adamw_steps, compare, default_device, lm_loss, parser, print_report, twins
from residual_kit.models.gpt import GPT, GPTConfig


def main() -> None:
    args = parser(__doc__).parse_args()
    device = default_device()
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=16, block_size=13)
    ours = GPT(config).to(device)
    theirs = HandWrittenGPT(config).to(device)
    theirs.load_state_dict(ours.state_dict())
    idx = torch.randint(0, 16, (args.batch_size, 13), device=device)
    diff, modes = twins(ours, theirs, idx, no_compile=args.no_compile)
    params = sum(p.numel() for p in ours.parameters())
    print(f"device={device}  threads={args.threads or torch.get_num_threads()}  batch={args.batch_size}  "
          f"params={params:,}  max |output difference|={diff:.1e}")  # fmt: skip
    for mode, a, b in modes:
        steps = adamw_steps({"hand-written": b, "residual-kit": a}, lm_loss(idx))
        print_report(f"{mode} training step:", compare(steps, "hand-written", args.rounds, num_threads=args.threads))


if __name__ == "__main__":
    main()
