"""The arena's cost table: each design's time per training step against the baseline's, timed alone.

The arena's runs share the machine with each other, so their own step times are not compared. Here
every design takes a few steps in turn, in interleaved rounds, in one process with nothing beside it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch

from tasks.core.timing import compare, sync


def step_times(
    build: Callable[[str, int], pl.LightningModule],
    designs: list[str],
    depths: list[int],
    batch_size: int,
    block_size: int,
    baseline: str,
    rounds: int = 5,
    min_run_time: float = 0.5,
    precision: str | None = None,
) -> dict[tuple[str, int], tuple[float, float, float]]:
    """Each design's time per training step over `baseline`'s at each depth.

    `build(design, depth)` gives the model, a language model with `train_loss((x, y))` and AdamW from
    `configure_optimizers()`; `precision` as the runs' ("bf16-mixed": bfloat16 autocast). The steps (forward,
    backward, clipping, AdamW) are timed by `tasks.core.timing.compare`: every design in turn, for `rounds`
    interleaved rounds; the figure is the median over rounds of its time over the baseline's in the same round,
    with the lowest and highest round: (median, low, high).
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ratios: dict[tuple[str, int], tuple[float, float, float]] = {}
    for depth in depths:
        steppers = {}
        for design in designs:
            torch.manual_seed(0)
            steppers[design] = training_step(build(design, depth).to(device), batch_size, block_size, precision)
        report = compare(steppers, baseline, rounds=rounds, min_run_time=min_run_time)
        ratios |= {(d, depth): (r["ratio"], r["ratio_min"], r["ratio_max"]) for d, r in report.items()}
    return ratios


def training_step(
    model: pl.LightningModule, batch_size: int, block_size: int, precision: str | None = None
) -> Callable[[], None]:
    """One step of `model` on a fixed batch of random tokens (`batch_size` windows of `block_size`), as the arena's
    trainer takes it (its `train_loss`, compiled if the model compiles it, under bfloat16 autocast for a "bf16"
    precision)."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, model.hparams.net.vocab_size, (2, batch_size, block_size), generator=gen).to(model.device)
    opt = model.configure_optimizers()["optimizer"]
    bf16 = bool(precision) and precision.startswith("bf16")

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model.train_loss((x, y))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sync(x.device)

    return step
