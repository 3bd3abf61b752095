"""Does `Residual` cost anything? ResNet-20 built from it against a hand-written twin, same weights.

    python -m benchmarks.residual_overhead [--batch-size 128] [--steps 20] [--device auto] [--no-compile]

Prints forward+backward time per step for both nets, eager and compiled, measured in one run with
interleaved repeats, and the ratio residual-kit / hand-written (1.00 = no overhead).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.reference_resnet import HandWrittenResNet, copy_weights
from residual_kit.models import create_model


def step_time(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """Median seconds of one forward+backward over `steps` timed steps (after warm-up)."""
    loss_fn = torch.nn.CrossEntropyLoss()
    times = []
    for i in range(steps + 3):
        if x.is_cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss_fn(model(x), y).backward()
        if x.is_cuda:
            torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repeats; the median round is kept")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    device = torch.device(
        "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device.replace("auto", "cpu")
    )
    torch.manual_seed(0)

    ours = create_model("resnet20", in_channels=3).to(device)
    theirs = HandWrittenResNet(20, in_channels=3).to(device)
    copy_weights(ours, theirs)
    x = torch.randn(args.batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch_size,), device=device)
    ours.eval(), theirs.eval()
    with torch.no_grad():
        diff = (ours(x) - theirs(x)).abs().max().item()
    n_ours, n_theirs = (sum(p.numel() for p in m.parameters()) for m in (ours, theirs))
    print(f"device={device}  batch={args.batch_size}  params: residual-kit {n_ours:,}, hand-written {n_theirs:,}")
    print(f"max |output difference| with copied weights (eval): {diff:.2e}")
    ours.train(), theirs.train()

    modes = [("eager", ours, theirs)]
    if not args.no_compile:
        modes.append(("compiled", torch.compile(ours), torch.compile(theirs)))
    print(f"{'mode':<10}{'residual-kit ms':>16}{'hand-written ms':>16}{'ratio':>8}")
    for name, a, b in modes:
        ta, tb = [], []
        for _ in range(args.rounds):  # interleave so drift in machine load hits both alike
            ta.append(step_time(a, x, y, args.steps))
            tb.append(step_time(b, x, y, args.steps))
        ma, mb = statistics.median(ta), statistics.median(tb)
        print(f"{name:<10}{ma * 1e3:>16.2f}{mb * 1e3:>16.2f}{ma / mb:>8.3f}")


if __name__ == "__main__":
    main()
