"""Timing two (or more) implementations fairly: `torch.utils.benchmark.Timer`, interleaved rounds, spread.

Each round times every candidate once with `Timer.blocked_autorange` (at a fixed thread count), in turn, so drift
in the machine's load hits all alike; the report is the median over rounds of each candidate's time and of the
per-round ratio to the baseline, with the ratio's min-max over rounds. The benchmarks and the arena's cost table
both time with it.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch
from torch.utils import benchmark


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def compare(
    candidates: dict[str, Callable[[], object]],
    baseline: str,
    rounds: int = 5,
    min_run_time: float = 1.0,
    num_threads: int | None = None,
) -> dict[str, dict[str, float]]:
    """Seconds per call and ratio to `baseline` (median and min-max over interleaved rounds)."""
    threads = num_threads or torch.get_num_threads()
    for fn in candidates.values():  # warm-up: compilation, allocator, oneDNN primitive caches
        for _ in range(3):
            fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
            times[name].append(timer.blocked_autorange(min_run_time=min_run_time).median)
    report = {}
    for name, ts in times.items():
        ratios = [t / b for t, b in zip(ts, times[baseline], strict=True)]
        report[name] = {
            "median_s": statistics.median(ts),
            "ratio": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
        }
    return report


__all__ = ["compare", "sync"]
