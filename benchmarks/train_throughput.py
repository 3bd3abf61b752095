"""A full training step of ResNet-20 from residual-kit against the hand-written twin, on digit-shaped batches.

    python -m benchmarks.train_throughput [--batch-size 128] [--size 28] [--rounds 5] [--threads 2] [--no-compile]

Each step is forward, cross-entropy, backward and SGD with Nesterov momentum. Both nets start from the
same weights; eager and compiled are timed with `torch.utils.benchmark` in interleaved rounds. Prints
seconds per step and the ratio residual-kit / hand-written (1.00 = no overhead) with its min-max, and
images per second.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmarks.reference_resnet import HandWrittenResNet, copy_weights
from benchmarks.timing import compare, default_device, parser, print_report, step_fn
from residual_kit.models import create_model


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--channels", type=int, default=1)
    args = p.parse_args()
    device = default_device()
    torch.manual_seed(0)
    x = torch.randn(args.batch_size, args.channels, args.size, args.size, device=device)
    y = torch.randint(0, 10, (args.batch_size,), device=device)
    print(f"device={device}  threads={args.threads or torch.get_num_threads()}  batch={args.batch_size}  "
          f"input={args.channels}x{args.size}x{args.size}")  # fmt: skip
    for mode in ["eager"] + ([] if args.no_compile else ["compiled"]):
        ours = create_model("resnet20", in_channels=args.channels).to(device)
        theirs = HandWrittenResNet(20, in_channels=args.channels).to(device)
        copy_weights(ours, theirs)
        if mode == "compiled":
            ours.compile()
            theirs.compile()
        loss = lambda m: F.cross_entropy(m(x), y)  # noqa: E731
        sgd = {m: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, nesterov=True) for m in (ours, theirs)}
        steps = {"hand-written": step_fn(theirs, loss, sgd[theirs]), "residual-kit": step_fn(ours, loss, sgd[ours])}
        report = compare(steps, "hand-written", args.rounds, num_threads=args.threads)
        print_report(f"{mode} training step:", report)
        for name, r in report.items():
            print(f"  {name:<28}{args.batch_size / r['median_s']:>10.0f} img/s")


if __name__ == "__main__":
    main()
