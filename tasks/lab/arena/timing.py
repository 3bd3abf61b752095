"""The arena's cost table: each design's time per training step against the baseline's, timed alone.

The arena's runs share the machine with each other, so their own step times are not compared. Here
every design takes a few steps in turn, in interleaved rounds, in one process with nothing beside it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pytorch_lightning as pl
import torch


def step_times(
    build: Callable[[str, int], pl.LightningModule],
    designs: list[str],
    depths: list[int],
    batch_size: int,
    baseline: str,
    rounds: int = 3,
    steps: int = 3,
) -> dict[tuple[str, int], float]:
    """Each design's time per training step over `baseline`'s at each depth.

    `build(design, depth)` gives the model, a language model with `loss((x, y))` and AdamW from
    `configure_optimizers()`. Every design takes `steps` steps (forward, backward, clipping, AdamW) in
    turn, for `rounds` interleaved rounds; the figure is the median over rounds of its time over the
    baseline's in the same round.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ratios: dict[tuple[str, int], float] = {}
    for depth in depths:
        steppers = {}
        for design in designs:
            torch.manual_seed(0)
            model = build(design, depth).to(device)
            steppers[design] = training_step(model, batch_size)
            steppers[design]()  # warm-up
        seconds: dict[str, list[float]] = {d: [] for d in designs}
        for _ in range(rounds):
            for design, step in steppers.items():
                sync(device)
                start = time.perf_counter()
                for _ in range(steps):
                    step()
                sync(device)
                seconds[design].append(time.perf_counter() - start)
        for design in designs:
            pairs = zip(seconds[design], seconds[baseline], strict=True)
            ratios[design, depth] = statistics.median(t / b for t, b in pairs)
    return ratios


def training_step(model: pl.LightningModule, batch_size: int) -> Callable[[], None]:
    """One step of `model` on a fixed batch of random tokens, as the arena's trainer takes it."""
    net = model.hparams.net
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, net.vocab_size, (2, batch_size, net.block_size), generator=gen).to(model.device)
    opt = model.configure_optimizers()["optimizer"]

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        model.loss((x, y)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    return step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
