"""The generator's variety terms, beside the adversarial loss: MSGAN's mode seeking and a per-class floor.

Both read a batch whose two halves are pairs of fakes drawn with the same labels (and InfoGAN codes)
and different noise: `DigitGAN.noise_and_labels` builds it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mode_seeking_loss(fake: torch.Tensor, z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """MSGAN's term (Mao et al. 2019, Eq. 3), to minimise: 1 / (mean|G(z1) - G(z2)| / mean|z1 - z2| + eps),
    for the two halves of a batch generated with the same labels."""
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


__all__ = ["mode_seeking_loss", "variety_floor_loss"]
