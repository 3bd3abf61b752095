"""The head every discriminator of `residual_kit.models.gan` shares: a critic score, a projection, a class head."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class Critic(nn.Module):
    """The head both discriminators share: D(x, y) = w^T h + <embed(y), h> (projection) over pooled features h.

    A conditional critic also has a class head, logits = V h: the auxiliary classifier of AC-GAN
    (Odena et al. 2017), used only when the condition's `loss` weight is above zero. An unconditional critic
    with `codes` has the same head without the projection: InfoGAN's Q (Chen et al. 2016), which
    recovers the generator's categorical code from its digit.
    """

    def head(self, features: int, num_classes: int = 0, codes: int = 0) -> None:
        """Build the head; subclasses call it after their feature layers (which keeps their init order)."""
        self.fc = spectral_norm(nn.Linear(features, 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, features)) if num_classes else None
        k = num_classes or codes
        self.classifier = spectral_norm(nn.Linear(features, k)) if k else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> pooled features h, (B, features)."""
        raise NotImplementedError

    def score_and_logits(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Critic scores (B,) and, with a class or code head, its logits (B, classes) from one pass."""
        h = self.features(x)
        out = self.fc(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(y) * h).sum(dim=1)  # the projection term
        return out, None if self.classifier is None else self.classifier(h)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.score_and_logits(x, y)[0]


__all__ = ["Critic"]
