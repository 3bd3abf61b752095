"""The learning-rate schedule the language-model tasks share: linear warm-up, then cosine decay to a floor."""

from __future__ import annotations

import math

import torch


def warmup_cosine(
    opt: torch.optim.Optimizer, warmup: int, total: int, floor: float = 0.1
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step schedule: the rate rises linearly over `warmup` steps to its peak, then falls along a half cosine
    to `floor` times the peak at step `total` and stays there (nanoGPT's `get_lr`); `warmup=0` starts at the peak."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


__all__ = ["warmup_cosine"]
