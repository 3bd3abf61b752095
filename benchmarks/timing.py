"""Timing two (or more) implementations fairly: `torch.utils.benchmark.Timer`, interleaved rounds, spread.

Each round times every candidate once with `Timer.blocked_autorange` (at a fixed thread count), in
turn, so drift in the machine's load hits all alike; the report is the median over rounds of each
candidate's time and of the per-round ratio to the baseline, with the ratio's min-max over rounds.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
from torch.utils import benchmark


def parser(doc: str | None) -> argparse.ArgumentParser:
    """The options every overhead benchmark takes."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians and min-max are over them")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--no-compile", action="store_true")
    return p


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def twins(ours: torch.nn.Module, theirs: torch.nn.Module, *inputs: torch.Tensor, no_compile: bool = False) -> tuple:
    """The two nets' max output difference in eval mode (0.0 with copied weights), then (mode, ours, theirs) pairs:
    eager, and compiled unless `no_compile`; both nets are left in train mode."""
    with torch.no_grad():
        diff = (ours.eval()(*inputs) - theirs.eval()(*inputs)).abs().max().item()
    ours.train(), theirs.train()
    modes = [("eager", ours, theirs)]
    if not no_compile:
        modes.append(("compiled", torch.compile(ours), torch.compile(theirs)))
    return diff, modes


def step_fn(model: torch.nn.Module, loss: Callable[[torch.nn.Module], torch.Tensor], opt: object = None) -> object:
    """One timed step: loss(model).backward(), then `opt.step()` when an optimiser is given."""
    device = next(model.parameters()).device

    def step() -> None:
        if opt is not None:
            opt.zero_grad(set_to_none=True)
        loss(model).backward()
        if opt is not None:
            opt.step()
        sync(device)

    return step


def lm_loss(idx: torch.Tensor) -> Callable[[torch.nn.Module], torch.Tensor]:
    """Next-token cross-entropy of a language model on the token batch `idx` (B, T)."""
    return lambda m: torch.nn.functional.cross_entropy(m(idx[:, :-1]).flatten(0, 1), idx[:, 1:].flatten())


def adamw_steps(models: dict[str, torch.nn.Module], loss: Callable[[torch.nn.Module], torch.Tensor]) -> dict:
    """One AdamW training step per named model (a compiled model shares its eager twin's parameters)."""
    return {name: step_fn(m, loss, torch.optim.AdamW(m.parameters(), lr=1e-3)) for name, m in models.items()}


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


def print_report(title: str, report: dict[str, dict[str, float]], unit: float = 1e3, unit_name: str = "ms") -> None:
    print(title)
    for name, r in report.items():
        spread = f"[{r['ratio_min']:.3f}, {r['ratio_max']:.3f}]"
        print(f"  {name:<28}{r['median_s'] * unit:>10.2f} {unit_name}   ratio {r['ratio']:.3f}  spread {spread}")
