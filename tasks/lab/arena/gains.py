"""What a design gains, counted as a reviewer would: failures scored, not dropped; gains charged for their cost.

A diverged run scores `FAILED_BITS` (the uniform model over 256 bytes: it learned nothing usable) in every
comparison, so a design that fails pays for it. The effective speed-up charges a design for its time per step
(Marin's speedrun gate; modded-nanogpt's records count wall-clock): the steps the baseline needs to reach the
design's final validation loss, over the design's steps times its cost per step against the baseline's.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import torch
from torch import nn

from tasks.lab.arena.train import TEST

FAILED_BITS = 8.0  # log2(256): a model that predicts every byte as likely as any other


def scored(run: dict[str, Any], key: str = TEST) -> float:
    """A run's bits per byte, `FAILED_BITS` where it diverged."""
    return run[key] if math.isfinite(run[key]) else FAILED_BITS


def validation_curve(run: dict[str, Any]) -> list[tuple[float, float]]:
    """(step, validation bits per byte) from the start (step 0 at `FAILED_BITS`, the untrained model's value)."""
    return [(0.0, FAILED_BITS), *((float(step), bits) for step, _, bits in run["_curve"])]


def steps_to_reach(curve: list[tuple[float, float]], bits: float) -> float:
    """The first step at which the curve (linear between its points) is at or below `bits`; inf if it never is."""
    for (s0, b0), (s1, b1) in pairwise(curve):
        if b0 <= bits:
            return s0
        if b1 <= bits:
            return s0 + (s1 - s0) * (b0 - bits) / (b0 - b1)
    return math.inf


@dataclass(frozen=True)
class SpeedUp:
    """The effective speed-up of one paired seed; `lower_bound` where the baseline never reached the design's loss
    within its steps (the true figure is larger)."""

    value: float
    lower_bound: bool = False

    def __str__(self) -> str:
        return f"{'>' if self.lower_bound else ''}{self.value:.2f}×"


def effective_speedup(run: dict[str, Any], base: dict[str, Any], cost: float) -> SpeedUp:
    """steps_base(design's final validation bits) / (design's steps × its cost per step over the baseline's); 0 for
    a diverged run. Both curves are read on the same validation windows."""
    if run["diverged at"] != "no" or not run["_curve"]:
        return SpeedUp(0.0)
    steps, final = run["_curve"][-1][0], run["_curve"][-1][2]
    needed = steps_to_reach(validation_curve(base), final)
    if math.isinf(needed):
        return SpeedUp(base["_curve"][-1][0] / (steps * cost), lower_bound=True)
    return SpeedUp(needed / (steps * cost))


def median_speedup(speedups: list[SpeedUp]) -> SpeedUp:
    """The median over seeds: a lower bound where a seed at or below it is one (its true value may lie above)."""
    median = statistics.median(s.value for s in speedups)
    return SpeedUp(median, any(s.lower_bound and s.value <= median for s in speedups))


def steps_to_target(runs: list[dict[str, Any]], steps: int) -> str:
    """The median over seeds of the steps to the training-loss target, a run that never reached it (or diverged)
    counted as never: "> steps" where that is the median; with how many reached it."""
    reached = [r["steps to target"] if math.isfinite(r["steps to target"]) else math.inf for r in runs]
    median = statistics.median(reached)
    shown = f"> {steps}" if math.isinf(median) else f"{median:.0f}"
    return f"{shown} ({sum(math.isfinite(v) for v in reached)}/{len(runs)} reached)"


def matmul_flops(model: nn.Module, tokens: int, attention: int = 0) -> float:
    """FLOPs of one training step (forward and backward): 6 per weight of every Linear layer and every recurrent
    layer's input and hidden matrices per token, and `attention` per token for attention's scores and weighted
    values (12·depth·context·dim for a GPT; Kaplan et al. 2020, Table 1)."""
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    weights += sum(p.numel() for m in model.modules() if isinstance(m, nn.RNNBase)
                   for name, p in m.named_parameters() if name.startswith("weight_"))  # fmt: skip
    return tokens * (6 * weights + attention)


def matmul_peak(dtype: torch.dtype = torch.float32, size: int = 1024, repeats: int = 20) -> float:
    """This process's measured matrix-multiply rate, FLOP/s, on square matrices of `size` (the best of `repeats`)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm-up
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def throughput_text(throughput: dict[str, Any]) -> str:
    t = throughput
    bf16 = str(t["precision"]).startswith("bf16")
    peak, kind = (t["peak_bf16"], "bfloat16") if bf16 else (t["peak_fp32"], "fp32")
    return (
        f"Pre-norm's training step runs {t['step_flops'] / 1e9:.2f} GFLOP (6 per weight of a Linear or recurrent "
        "matrix per byte, and for a GPT attention's 12·depth·context·width; forward and backward) in "
        f"{t['step_seconds'] * 1e3:.0f} ms (the median "
        f"step of its runs, each on one thread beside another run): {t['achieved'] / 1e9:.1f} GFLOP/s, "
        f"{t['achieved'] / peak:.0%} of this CPU's {kind} matrix-multiply rate on one thread, measured in this run "
        f"on 1024×1024 matrices ({peak / 1e9:.0f} GFLOP/s; fp32 {t['peak_fp32'] / 1e9:.0f}, bfloat16 "
        f"{t['peak_bf16'] / 1e9:.0f}). Precision of the training steps: {t['precision']}; compiled: {t['compile']}; "
        "scoring in fp32."
    )


__all__ = [
    "FAILED_BITS",
    "SpeedUp",
    "effective_speedup",
    "matmul_flops",
    "matmul_peak",
    "median_speedup",
    "scored",
    "steps_to_reach",
    "steps_to_target",
    "throughput_text",
    "validation_curve",
]
