"""The generator's terms beside the adversarial loss, each a module in `DigitGAN(g_losses=[...])`.

    ModeSeeking(0.3)    MSGAN's mode-seeking term (Mao et al. 2019): a different z gives a different digit
    VarietyFloor(7.0)   a per-class floor on variety: DSGAN's clipped diversity term (Yang et al. 2019) with the
                        clip set by how far apart two real digits of the class lie

Both read a batch whose two halves are pairs of fakes drawn with the same condition and different noise
(`DigitGAN.paired_noise` builds it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tasks.gan.conditioning import Condition


def mode_seeking_loss(fake: torch.Tensor, z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """MSGAN's term (Mao et al. 2019, Eq. 3), to minimise: 1 / (mean|G(z1) - G(z2)| / mean|z1 - z2| + eps),
    for the two halves of a batch generated with the same conditions."""
    f1, f2 = fake.chunk(2)
    z1, z2 = z.chunk(2)
    ratio = (f1 - f2).abs().mean() / (z1 - z2).abs().mean()
    return 1 / (ratio + eps)


def variety_floor_loss(fake: torch.Tensor, spread: torch.Tensor) -> torch.Tensor:
    """A per-class floor on variety, to minimise: mean over pairs of relu(1 - mean|G(z1, y) - G(z2, y)| / s_y).

    DSGAN's clipped diversity term (Yang et al. 2019) with the clip set per pair by `spread` (s_y, the mean
    L1 distance between two real digits of the pair's class): a pair closer than two real digits of its
    class is pushed apart, a pair as far apart is left alone. `fake`'s halves are the pairs."""
    f1, f2 = fake.chunk(2)
    return F.relu(1 - (f1 - f2).abs().flatten(1).mean(1) / spread).mean()


class GeneratorLoss(nn.Module):
    """A term added to G's loss: `weight * forward(pairs, z, condition)` over paired fakes (see the module doc).

    Args:
        weight: the term's weight (0 turns it off).
    """

    def __init__(self, weight: float) -> None:
        super().__init__()
        if weight < 0:
            raise ValueError(f"{type(self).__name__}(weight={weight}): the weight cannot be negative")
        self.weight = weight

    def setup(self, condition: Condition | None) -> None:
        """Check the term against the GAN's condition, and size any state it keeps."""

    def observe(self, real: torch.Tensor, condition: torch.Tensor | None) -> None:
        """See a batch of real digits in [-1, 1] with their condition (before G's step)."""

    def extra_repr(self) -> str:
        return f"weight={self.weight}"


class ModeSeeking(GeneratorLoss):
    """MSGAN: G also maximises mean|G(z1, c) - G(z2, c)| / mean|z1 - z2| over pairs of noises with one condition."""

    def forward(self, pairs: torch.Tensor, z: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        return mode_seeking_loss(pairs, z)


class VarietyFloor(GeneratorLoss):
    """G pushes apart each pair of its digits of one class that lie closer than two real digits of that class do on
    average (a running mean over the training batches), and leaves the classes that already vary alone. Needs a
    condition that real digits have (classes or clusters): the floor is per class or cluster."""

    def setup(self, condition: Condition | None) -> None:
        if condition is None or not condition.projection:
            name = "no condition" if condition is None else type(condition).__name__
            raise ValueError(f"VarietyFloor needs classes or clusters that real digits have, not {name}: drop it "
                             "from --model.g_losses")  # fmt: skip
        # sums over training batches of the L1 distances between real digits of one class, and their pair counts
        self.register_buffer("real_distance", torch.zeros(condition.size))
        self.register_buffer("real_pairs", torch.zeros(condition.size))

    @torch.no_grad()
    def observe(self, real: torch.Tensor, condition: torch.Tensor | None) -> None:
        flat = real.flatten(1)  # (B, 784)
        same = condition[:, None] == condition[None, :]  # (B, B): pairs of one class (a digit with itself adds 0)
        distance = torch.cdist(flat, flat, p=1) / flat.shape[1] * same  # one cdist, not one per class
        self.real_distance.index_add_(0, condition, distance.sum(1))
        self.real_pairs.index_add_(0, condition, same.sum(1).to(self.real_pairs.dtype) - 1)

    def real_spread(self, condition: torch.Tensor) -> torch.Tensor:
        """s_c: the mean L1 distance (per pixel, in [-1, 1]) between two real digits of class c."""
        return (self.real_distance / self.real_pairs.clamp(min=1))[condition].clamp(min=1e-3)

    def forward(self, pairs: torch.Tensor, z: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        return variety_floor_loss(pairs, self.real_spread(condition[: len(pairs) // 2]))


__all__ = ["GeneratorLoss", "ModeSeeking", "VarietyFloor", "mode_seeking_loss", "variety_floor_loss"]
