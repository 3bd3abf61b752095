"""Residual GAN for 28x28 images (the ResNet GAN of WGAN-GP and SNGAN, sized for digits), and a DCGAN twin.

Generator: z -> 7x7 -> up-block (14x14) -> up-block (28x28) -> BN-ReLU-conv -> tanh. Each up-block is
`Residual(wrap=branch, shortcut=upsample + 1x1 conv)`; its branch takes the class label as an extra
argument for class-conditional BatchNorm. A conditional generator also reads a class embedding beside z
(as BigGAN does), so the class shapes the 7x7 layout from the first step.

Discriminator: spectrally normalised down-blocks, ReLU, sum pooling, a linear critic, plus the projection
term <embed(y), h> when conditional (Miyato & Koyama 2018).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..conditioned import ConditionalNorm
from ..residual import Residual


def conditional_bn(channels: int, num_classes: int = 0) -> ConditionalNorm:
    """Class-conditional BN: y = BN(x) * (1 + gamma[c]) + beta[c], gamma and beta from zero; plain BN without c."""
    return ConditionalNorm(channels, num_classes=num_classes, norm="batch", data_format="channels_first")


class UpBranch(nn.Module):
    """F(x, y) = conv(ReLU(CBN(conv(up(ReLU(CBN(x, y)))), y)))."""

    def __init__(self, cin: int, cout: int, num_classes: int = 0) -> None:
        super().__init__()
        self.norm1, self.norm2 = conditional_bn(cin, num_classes), conditional_bn(cout, num_classes)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = F.interpolate(F.relu(self.norm1(x, y)), scale_factor=2.0)
        return self.conv2(F.relu(self.norm2(self.conv1(h), y)))


def up_block(cin: int, cout: int, num_classes: int = 0) -> Residual:
    """x_{l+1} = up(W x_l) + F(x_l, y): the shortcut upsamples and projects, the branch learns the rest."""
    shortcut = nn.Sequential(nn.Upsample(scale_factor=2.0), nn.Conv2d(cin, cout, 1))
    return Residual(wrap=UpBranch(cin, cout, num_classes), shortcut=shortcut, data_format="channels_first")


def down_block(cin: int, cout: int, downsample: bool = True, first: bool = False) -> Residual:
    """x_{l+1} = pool(W x_l) + pool(conv(ReLU(conv(ReLU(x_l))))), every conv spectrally normalised.

    The first block skips the leading ReLU (its input is the image); its shortcut pools before the 1x1.
    """
    pool: nn.Module = nn.AvgPool2d(2) if downsample else nn.Identity()
    branch = nn.Sequential(
        *([] if first else [nn.ReLU()]),  # not in place: x also feeds the shortcut
        spectral_norm(nn.Conv2d(cin, cout, 3, padding=1)),
        nn.ReLU(),
        spectral_norm(nn.Conv2d(cout, cout, 3, padding=1)),
        pool,
    )
    if cin == cout and not downsample:
        shortcut: nn.Module = nn.Identity()
    elif first:
        shortcut = nn.Sequential(pool, spectral_norm(nn.Conv2d(cin, cout, 1)))
    else:
        shortcut = nn.Sequential(spectral_norm(nn.Conv2d(cin, cout, 1)), pool)
    return Residual(wrap=branch, shortcut=shortcut, data_format="channels_first")


class ResNetGenerator(nn.Module):
    """z (B, z_dim) [and labels (B,)] -> images (B, image_channels, 28, 28) in [-1, 1].

    Args:
        z_dim: noise dimensions.
        channels: channels of the residual blocks.
        num_classes: 0 for unconditional; else a class embedding joins z, and the class-conditional BN
            gets one gain and bias per class.
        image_channels: image channels.
        class_input: with classes, feed the class embedding beside z; False leaves the class to the
            conditional BN alone, so z alone sets the 7x7 layout.
    """

    def __init__(
        self, z_dim: int = 128, channels: int = 64, num_classes: int = 0, image_channels: int = 1,
        class_input: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        self.z_dim, self.num_classes, self.channels = z_dim, num_classes, channels
        self.embed = nn.Embedding(num_classes, z_dim) if num_classes and class_input else None
        self.fc = nn.Linear(2 * z_dim if self.embed is not None else z_dim, 7 * 7 * channels)
        self.blocks = nn.ModuleList([up_block(channels, channels, num_classes) for _ in range(2)])
        self.out = nn.Sequential(
            nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, image_channels, 3, padding=1), nn.Tanh()
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], dim=1)  # (B, 2 * z_dim)
        h = self.fc(z).view(-1, self.channels, 7, 7)  # (B, W, 7, 7)
        for block in self.blocks:
            h = block(h, y)  # 7 -> 14 -> 28
        return self.out(h)


class Critic(nn.Module):
    """The head both discriminators share: D(x, y) = w^T h + <embed(y), h> (projection) over pooled features h.

    A conditional critic also has a class head, logits = V h: the auxiliary classifier of AC-GAN
    (Odena et al. 2017), used only when the GAN's `aux_weight` is above zero. An unconditional critic
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


class ResNetDiscriminator(Critic):
    """images (B, image_channels, 28, 28) [and labels] -> critic scores (B,).

    Args:
        channels: channels of the residual blocks.
        num_classes: 0 for unconditional; else a projection discriminator.
        image_channels: image channels.
        codes: unconditional only: outputs of InfoGAN's code head (0: none).
    """

    def __init__(self, channels: int = 64, num_classes: int = 0, image_channels: int = 1, codes: int = 0) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            down_block(image_channels, channels, first=True),  # 28 -> 14
            down_block(channels, channels),  # 14 -> 7
            down_block(channels, channels, downsample=False),
        )
        self.head(channels, num_classes, codes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.blocks(x)).sum(dim=(2, 3))  # (B, W)


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


GENERATORS = {"resnet": ResNetGenerator, "dcgan": DCGANGenerator}
DISCRIMINATORS = {"resnet": ResNetDiscriminator, "dcgan": DCGANDiscriminator}


@dataclass
class GANConfig:
    """Generator and discriminator, configured once.

    Args:
        arch: "resnet" (residual blocks, spectral norm in D) or "dcgan" (the plain baseline).
        z_dim: noise dimensions.
        channels: channels of G's and D's blocks (D's widest layer in the DCGAN is twice this).
        num_classes: 10 for class-conditional digits; 0 for unconditional.
        class_input: conditional ResNet G only: the class embedding joins z (True) or the class enters
            only through the conditional BN (False).
        d_channels: D's channels when they differ from G's (None: `channels`).
        codes: unconditional only: InfoGAN's categorical code (Chen et al. 2016). G reads a code c in
            0..codes-1 as a conditional G reads its class, and D's head learns to tell c from the digit,
            so that each code becomes one kind of digit without labels: the latent space splits into
            `codes` islands instead of one continuum whose in-between points are in-between digits.
            The code is drawn with the noise (see `code_of`).
        clusters: unconditional only: the self-conditioned GAN (Liu et al. 2020; Sage et al. 2018's
            Logo-GAN): G reads a cluster of the training digits as a conditional G reads its class, and
            D is a projection discriminator over the clusters, a real digit's cluster its nearest k-means
            centroid (the LightningModule fits them). D then asks every generated digit to look like the
            real digits of its cluster, where InfoGAN's code only asks it to differ from other codes.
    """

    arch: Literal["resnet", "dcgan"] = "resnet"
    z_dim: int = 128
    channels: int = 32
    num_classes: int = 10
    class_input: bool = True
    d_channels: int | None = None
    codes: int = 0
    clusters: int = 0

    def __post_init__(self) -> None:
        for name, k in (("codes", self.codes), ("clusters", self.clusters)):
            if k and self.num_classes:
                raise ValueError(f"{name}={k} is for unconditional GANs: set num_classes=0, or {name}=0")
        if self.codes and self.clusters:
            raise ValueError(f"codes={self.codes} and clusters={self.clusters}: choose one, set the other to 0")
        if self.drawn > self.z_dim:
            raise ValueError(
                f"codes={self.codes}, clusters={self.clusters}: the code (or cluster) is drawn from z's first "
                f"entries, at most z_dim={self.z_dim}"
            )

    @property
    def drawn(self) -> int:
        """Codes or clusters: how many ways the condition drawn from z's first entries has (0: none)."""
        return self.codes or self.clusters

    @property
    def conditions(self) -> int:
        """What G reads beside z, as a class: classes, codes or clusters (0: nothing)."""
        return self.num_classes or self.drawn

    def generator(self) -> nn.Module:
        k = self.conditions  # G reads a code or a cluster as it reads a class
        if self.arch == "resnet":
            return ResNetGenerator(self.z_dim, self.channels, k, class_input=self.class_input)
        return GENERATORS[self.arch](self.z_dim, self.channels, k)

    def discriminator(self) -> Critic:
        projection = self.num_classes or self.clusters  # real digits have a class or a cluster; codes do not
        return DISCRIMINATORS[self.arch](self.d_channels or self.channels, projection, codes=self.codes)


def code_of(z: torch.Tensor, codes: int) -> torch.Tensor:
    """InfoGAN's categorical code drawn from the noise itself, argmax of z's first `codes` entries: uniform
    for z ~ N(0, I), and fixed by z, so a seed still gives one digit (and truncation keeps it)."""
    return z[:, :codes].argmax(dim=1)


__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "Critic",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "GANConfig",
    "ResNetDiscriminator",
    "ResNetGenerator",
    "code_of",
    "conditional_bn",
    "down_block",
    "up_block",
]
