"""Does `Residual` cost anything? ResNet-20 built from it against a hand-written twin, same weights.

    python -m benchmarks.residual_overhead [--batch-size 128] [--rounds 5] [--threads 2] [--no-compile]

Forward+backward of ResNet-20 (batch 128, 3x32x32) for both nets, eager and compiled, timed with
`torch.utils.benchmark` in interleaved rounds; prints the ratio residual-kit / hand-written
(1.00 = no overhead) with its min-max over rounds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmarks.reference_resnet import HandWrittenResNet, copy_weights
from benchmarks.timing import compare, default_device, parser, print_report, step_fn, twins
from residual_kit.models import create_model


def main() -> None:
    args = parser(__doc__).parse_args()
    device = default_device()
    torch.manual_seed(0)
    ours = create_model("resnet20", in_channels=3).to(device)
    theirs = HandWrittenResNet(20, in_channels=3).to(device)
    copy_weights(ours, theirs)
    x = torch.randn(args.batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch_size,), device=device)
    diff, modes = twins(ours, theirs, x, no_compile=args.no_compile)
    print(f"device={device}  threads={args.threads or torch.get_num_threads()}  batch={args.batch_size}  "
          f"max |output difference| with copied weights={diff:.1e}")  # fmt: skip
    for mode, a, b in modes:
        loss = lambda m: F.cross_entropy(m(x), y)  # noqa: E731
        steps = {"hand-written": step_fn(b, loss), "residual-kit": step_fn(a, loss)}
        print_report(f"{mode} forward+backward:", compare(steps, "hand-written", args.rounds, num_threads=args.threads))


if __name__ == "__main__":
    main()
