"""How the GAN's generator is averaged and its noise drawn for samples: the EMA with warm-up, BigGAN's
truncation, and the k draws of `DigitGAN.best_of`."""

from __future__ import annotations

from typing import Any

import torch


def ema_with_warmup(decay: float) -> Any:
    """EMA whose decay ramps up as min(decay, (1 + n) / (10 + n)) over n updates (TF's num_updates rule).

    A fixed 0.999 from the first step keeps ~40% of the random initial weights after 1,000 steps, which
    is the whole of a CPU-sized run; the warm-up lets the average follow the generator early on.
    """

    def avg(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        n = float(num_averaged)
        d = min(decay, (1 + n) / (10 + n))
        return d * averaged + (1 - d) * current

    return avg


def truncate(z: torch.Tensor, t: float) -> torch.Tensor:
    """z ~ N(0, 1) -> N(0, 1) cut to [-t, t], quantile for quantile: Phi^-1(Phi(-t) + Phi(z)(Phi(t) - Phi(-t)))."""
    low = torch.special.ndtr(torch.tensor(-t, dtype=z.dtype))
    return torch.special.ndtri(low + torch.special.ndtr(z) * (1 - 2 * low)).clamp(-t, t)


def rolled_draws(z: torch.Tensor, kept: int, k: int) -> torch.Tensor:
    """k noises per row of z, (B, z_dim) -> (k * B, z_dim): z itself, then z with its entries after the first
    `kept` (those that pick a code or cluster) rolled by 1..k-1 places: each N(0, I), and fixed by z."""
    return torch.cat([torch.cat([z[:, :kept], z[:, kept:].roll(j, dims=1)], dim=1) for j in range(k)])


__all__ = ["ema_with_warmup", "rolled_draws", "truncate"]
