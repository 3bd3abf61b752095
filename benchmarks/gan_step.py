"""What does channels-last buy the GAN? One full training step (D step, G step, EMA), NCHW against NHWC.

    python -m benchmarks.gan_step [--batch-size 16] [--steps 10] [--rounds 12] [--num-classes 10]

Both GANs start from the same weights and run interleaved rounds in one process, so a machine that
speeds up or slows down mid-run affects both alike. Prints the median ms per step and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from residual_kit.models import GANConfig
from tasks.gan import DigitGAN


def training_step(model: DigitGAN, batch_size: int) -> Callable[[], None]:
    """One step of DigitGAN.training_step's arithmetic without a Trainer (one G forward; D on real and fake,
    then G on the same fakes), without the mode-seeking and variety terms."""
    h = model.hparams
    opt_g = torch.optim.Adam(model.generator.parameters(), lr=h.lr_g, betas=h.betas)
    opt_d = torch.optim.Adam(model.discriminator.parameters(), lr=h.lr_d, betas=h.betas)
    real = torch.rand(batch_size, 1, 28, 28) * 2 - 1
    y = torch.randint(0, 10, (batch_size,)) if model.num_classes else None

    def step() -> None:
        fake = model.generator(model.noise(batch_size), y)
        opt_d.zero_grad(set_to_none=True)
        model.d_loss(real, fake.detach(), y).backward()
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        model.g_loss(fake, y).backward()
        opt_g.step()
        model.ema.update_parameters(model.generator)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=12, help="interleaved rounds; the first two warm up")
    parser.add_argument("--num-classes", type=int, default=10)
    args = parser.parse_args()

    torch.manual_seed(0)
    nhwc = DigitGAN(GANConfig(num_classes=args.num_classes), channels_last=True)
    nchw = DigitGAN(GANConfig(num_classes=args.num_classes), channels_last=False)
    nchw.load_state_dict(nhwc.state_dict())
    steps = {"NCHW": training_step(nchw, args.batch_size), "channels_last": training_step(nhwc, args.batch_size)}
    times: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(args.rounds):
        for name, step in steps.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            if r >= 2:
                times[name].append((time.perf_counter() - t0) / args.steps * 1000)
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"batch={args.batch_size}  threads={torch.get_num_threads()}  num_classes={args.num_classes}")
    for name, ms in med.items():
        print(f"{name:>14}: {ms:7.1f} ms per training step")
    print(f"speed-up channels_last / NCHW: {med['NCHW'] / med['channels_last']:.2f}x")


if __name__ == "__main__":
    main()
