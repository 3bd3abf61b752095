"""Training throughput (images/s): ResNet-20 from residual-kit against the hand-written twin.

    python -m benchmarks.train_throughput [--batch-size 128] [--steps 15] [--size 28] [--no-compile]

Each step is a full optimiser step (forward, cross-entropy, backward, SGD with Nesterov momentum) on
digit-shaped batches (1x28x28 by default). Both nets start from the same weights; eager and compiled
are measured in the same run, interleaved, and the ratio residual-kit / hand-written is printed
(> 1 means residual-kit is faster).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.reference_resnet import HandWrittenResNet, copy_weights
from residual_kit.models import create_model


def images_per_second(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    for _ in range(3):  # warm-up (and compilation)
        step()
    if x.is_cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if x.is_cuda:
        torch.cuda.synchronize()
    return steps * len(x) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    x = torch.randn(args.batch_size, args.channels, args.size, args.size, device=device)
    y = torch.randint(0, 10, (args.batch_size,), device=device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device={name}  batch={args.batch_size}  input={args.channels}x{args.size}x{args.size}")
    print(f"{'mode':<10}{'residual-kit img/s':>20}{'hand-written img/s':>20}{'ratio':>8}")
    for mode in ["eager"] + ([] if args.no_compile else ["compiled"]):
        ours = create_model("resnet20", in_channels=args.channels).to(device)
        theirs = HandWrittenResNet(20, in_channels=args.channels).to(device)
        copy_weights(ours, theirs)
        if mode == "compiled":
            ours.compile()
            theirs.compile()
        a, b = [], []
        for _ in range(args.rounds):
            a.append(images_per_second(ours, x, y, args.steps))
            b.append(images_per_second(theirs, x, y, args.steps))
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"{mode:<10}{ma:>20.0f}{mb:>20.0f}{ma / mb:>8.3f}")


if __name__ == "__main__":
    main()
