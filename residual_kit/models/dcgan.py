"""The plain DCGAN baseline of the digit GAN: transposed convolutions in G, strided ones in D, no shortcut."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .critic import Critic


class DCGANGenerator(nn.Module):
    """The plain baseline: z -> 7x7 -> transposed convs to 28x28, BN-ReLU between, no shortcut."""

    def __init__(self, z_dim: int = 128, channels: int = 64, num_classes: int = 0, image_channels: int = 1) -> None:
        super().__init__()
        self.z_dim, self.num_classes, self.channels = z_dim, num_classes, channels
        self.embed = nn.Embedding(num_classes, z_dim) if num_classes else None
        self.fc = nn.Sequential(nn.Linear(z_dim, 7 * 7 * 2 * channels), nn.BatchNorm1d(7 * 7 * 2 * channels), nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * channels, channels, 4, 2, 1), nn.BatchNorm2d(channels), nn.ReLU(),  # 14x14
            nn.ConvTranspose2d(channels, channels, 4, 2, 1), nn.BatchNorm2d(channels), nn.ReLU(),  # 28x28
            nn.Conv2d(channels, image_channels, 3, padding=1), nn.Tanh(),
        )  # fmt: skip

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = z * self.embed(y)
        return self.net(self.fc(z).view(-1, 2 * self.channels, 7, 7))


class DCGANDiscriminator(Critic):
    """The plain baseline critic: strided convs with LeakyReLU, spectrally normalised, projection if conditional."""

    def __init__(self, channels: int = 64, num_classes: int = 0, image_channels: int = 1, codes: int = 0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            spectral_norm(nn.Conv2d(image_channels, channels, 4, 2, 1)), nn.LeakyReLU(0.1),  # 14x14
            spectral_norm(nn.Conv2d(channels, 2 * channels, 4, 2, 1)), nn.LeakyReLU(0.1),  # 7x7
            spectral_norm(nn.Conv2d(2 * channels, 2 * channels, 3, 1, 1)), nn.LeakyReLU(0.1),
        )  # fmt: skip
        self.head(2 * channels, num_classes, codes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).sum(dim=(2, 3))  # (B, 2W)


__all__ = ["DCGANDiscriminator", "DCGANGenerator"]
