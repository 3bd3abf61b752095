"""How the GAN's digits are drawn for evaluation and samples: the generator's EMA with warm-up, and `Sampling`
(BigGAN's truncation, and the best of k draws by D's class head)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


def ema_with_warmup(decay: float) -> Any:
    """EMA whose decay ramps up as min(decay, (1 + n) / (10 + n)) over n updates (TF's num_updates rule).

    A fixed decay of 0.999 from the first step would keep much of the random initial weights through a short
    CPU run; the warm-up lets the average follow the generator early on.
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


@torch.no_grad()
def most_confident(digits: torch.Tensor, condition: torch.Tensor, discriminator: nn.Module) -> torch.Tensor:
    """Of k digits per condition, (k, B, 1, 28, 28), the one to which D's class head gives its condition the
    highest probability, (B, 1, 28, 28)."""
    training = discriminator.training
    discriminator.eval()  # spectral norm's power iteration must not move while D only ranks
    asked = condition.repeat(len(digits))  # (k * B,): each draw's own digit's condition
    _, logits = discriminator.score_and_logits(digits.flatten(0, 1), asked)
    discriminator.train(training)
    sure = logits.log_softmax(dim=1).gather(1, asked[:, None]).view(len(digits), -1)  # (k, B)
    return digits[sure.argmax(dim=0), torch.arange(len(condition), device=condition.device)]


@dataclass
class Sampling:
    """How the EMA generator draws digits for evaluation and samples (training always uses the full N(0, I)).

    Args:
        truncation: BigGAN's truncation trick (Brock et al. 2019): z from N(0, I) cut to [-t, t] (each z mapped
            through the normal CDF, so a seed gives the same digit's truncated form): more legible, less varied
            digits. None: no cut.
        best_of: draws per digit: G draws k digits from z and k - 1 variants of it (the entries that pick the code
            or cluster kept, the rest rolled by 1..k-1 places), and the one D's class head is most confident has
            the asked condition is kept: rejection by the discriminator (after Azadi et al. 2019), more legible,
            less varied digits. Needs a condition whose head is trained (its loss > 0). 1: every draw is kept.
    """

    truncation: float | None = None
    best_of: int = 1

    def __post_init__(self) -> None:
        if self.truncation is not None and self.truncation <= 0:
            raise ValueError(f"truncation={self.truncation}: the cut-off t must be positive (e.g. 1.0), or null")
        if self.best_of < 1:
            raise ValueError(f"best_of={self.best_of}: the draws per digit must be at least 1 (1 keeps every draw)")

    def noise(self, z: torch.Tensor) -> torch.Tensor:
        return truncate(z, self.truncation) if self.truncation else z


__all__ = ["Sampling", "ema_with_warmup", "most_confident", "rolled_draws", "truncate"]
