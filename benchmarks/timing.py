"""The benchmarks' shared options and steps; the timing itself is `tasks.core.timing.compare` (interleaved rounds
of `torch.utils.benchmark.Timer`), which the arena's cost table uses too."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

from tasks.core.timing import compare, sync


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


def print_report(title: str, report: dict[str, dict[str, float]], unit: float = 1e3, unit_name: str = "ms") -> None:
    print(title)
    for name, r in report.items():
        spread = f"[{r['ratio_min']:.3f}, {r['ratio_max']:.3f}]"
        print(f"  {name:<28}{r['median_s'] * unit:>10.2f} {unit_name}   ratio {r['ratio']:.3f}  spread {spread}")


__all__ = ["adamw_steps", "compare", "default_device", "lm_loss", "parser", "print_report", "step_fn", "sync", "twins"]
