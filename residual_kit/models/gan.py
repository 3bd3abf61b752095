"""Residual GAN for 28x28 images (the ResNet GAN of WGAN-GP and SNGAN, sized for digits), and a DCGAN twin.

Generator: z -> 7x7 -> up-block (14x14) -> up-block (28x28) -> BN-ReLU-conv -> tanh. Each up-block is
`Residual(wrap=branch, shortcut=upsample + 1x1 conv)`; its branch takes the class label as an extra
argument for class-conditional BatchNorm. A conditional generator also reads a class embedding beside z
(as BigGAN does), so the class shapes the 7x7 layout from the first step.

Discriminator: spectrally normalised down-blocks, ReLU, sum pooling, a linear critic, plus the projection
term <embed(y), h> when conditional (Miyato & Koyama 2018).

`GANConfig` configures both networks; what they are conditioned on (classes, codes, clusters) is given to
`GANConfig.build(conditions, projection)` by the task that knows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..conditioned import ConditionalNorm
from ..registry import Registry
from ..residual import Residual
from .critic import Critic
from .dcgan import DCGANDiscriminator, DCGANGenerator
from .options import ResidualOptions


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


Block = Any  # (branch, shortcut, cin, cout) -> a residual block: `ResidualOptions.residual` with the model's options


def plain_block(branch: nn.Module, shortcut: nn.Module, cin: int, cout: int) -> Residual:
    return Residual(branch, shortcut=shortcut, data_format="channels_first")


def up_block(cin: int, cout: int, num_classes: int = 0, block: Block = plain_block) -> Residual:
    """x_{l+1} = up(W x_l) + F(x_l, y): the shortcut upsamples and projects, the branch learns the rest."""
    shortcut = nn.Sequential(nn.Upsample(scale_factor=2.0), nn.Conv2d(cin, cout, 1))
    return block(UpBranch(cin, cout, num_classes), shortcut, cin, cout)


def down_block(
    cin: int, cout: int, downsample: bool = True, first: bool = False, block: Block = plain_block
) -> Residual:
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
    return block(branch, shortcut, cin, cout)


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
        block: builds each residual block from its branch and shortcut (the model's residual options).
    """

    def __init__(
        self, z_dim: int = 128, channels: int = 64, num_classes: int = 0, image_channels: int = 1,
        class_input: bool = True, block: Block = plain_block,
    ) -> None:  # fmt: skip
        super().__init__()
        self.z_dim, self.num_classes, self.channels = z_dim, num_classes, channels
        self.embed = nn.Embedding(num_classes, z_dim) if num_classes and class_input else None
        self.fc = nn.Linear(2 * z_dim if self.embed is not None else z_dim, 7 * 7 * channels)
        self.blocks = nn.ModuleList([up_block(channels, channels, num_classes, block) for _ in range(2)])
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


class ResNetDiscriminator(Critic):
    """images (B, image_channels, 28, 28) [and labels] -> critic scores (B,).

    Args:
        channels: channels of the residual blocks.
        num_classes: 0 for unconditional; else a projection discriminator.
        image_channels: image channels.
        codes: outputs of a class head without projection (InfoGAN's code head; 0: none).
        block: builds each residual block from its branch and shortcut (the model's residual options).
    """

    def __init__(
        self, channels: int = 64, num_classes: int = 0, image_channels: int = 1, codes: int = 0,
        block: Block = plain_block,
    ) -> None:  # fmt: skip
        super().__init__()
        self.blocks = nn.Sequential(
            down_block(image_channels, channels, first=True, block=block),  # 28 -> 14
            down_block(channels, channels, block=block),  # 14 -> 7
            down_block(channels, channels, downsample=False, block=block),
        )
        self.head(channels, num_classes, codes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.blocks(x)).sum(dim=(2, 3))  # (B, W)


class GAN(nn.Module):
    """A generator and its discriminator, built together from one `GANConfig` (and `build`'s arguments)."""

    def __init__(
        self, generator: nn.Module, discriminator: Critic, config: GANConfig, conditions: int, projection: bool
    ) -> None:
        super().__init__()
        self.generator, self.discriminator = generator, discriminator
        self.config, self.build_args = config, {"conditions": conditions, "projection": projection}


GAN_ARCHS: Registry[tuple[type[nn.Module], type[Critic]]] = Registry(
    "arch",
    {"resnet": (ResNetGenerator, ResNetDiscriminator), "dcgan": (DCGANGenerator, DCGANDiscriminator)},
    home="residual_kit.models.gan.GAN_ARCHS",
)
"""GAN architectures by name: (generator class, discriminator class)."""


@dataclass
class GANConfig(ResidualOptions):
    """Generator and discriminator, configured once; the residual options (`ResidualOptions`) act on the
    residual blocks of both (2 up-blocks in G, 3 down-blocks in D).

    Args:
        arch: a name in `GAN_ARCHS`: "resnet" (residual blocks, spectral norm in D) or "dcgan" (the plain
            baseline, which has no residual block for the residual options).
        z_dim: noise dimensions.
        dim: channels of G's and D's blocks (D's widest layer in the DCGAN is twice this).
        d_dim: D's channels when they differ from G's (None: `dim`).
        class_input: a conditional ResNet G also reads a class embedding beside z (as BigGAN); False leaves the
            class to the conditional BN alone.
        norm: the norm that `placement` puts in ("batch").
    """

    arch: Literal["resnet", "dcgan"] = "resnet"
    z_dim: int = 128
    dim: int = 32
    d_dim: int | None = None
    class_input: bool = True
    norm: str = field(default="batch", kw_only=True)

    def build(self, conditions: int = 0, projection: bool = False) -> GAN:
        """G reading one of `conditions` values beside z (0: none), and D with a class head over them that also
        projects them when `projection` (real digits have a class or a cluster; InfoGAN's codes do not)."""
        self.check_residual_options()
        generator_class, discriminator_class = GAN_ARCHS.get_builder(self.arch)
        d_dim, projected, head = (
            self.d_dim or self.dim,
            conditions if projection else 0,
            0 if projection else conditions,
        )
        if self.arch == "dcgan":
            self.refuse_residual_options("arch='dcgan' has no residual block")
            if not self.class_input:
                raise ValueError("class_input=False cannot apply: the DCGAN reads its class only beside z")
            g, d = generator_class(self.z_dim, self.dim, conditions), discriminator_class(d_dim, projected, codes=head)
            return GAN(g, d, self, conditions, projection)
        rates = iter(self.drop_path_rates(2) + self.drop_path_rates(3))  # G's 2 blocks, then D's 3
        layers = iter([0, 1, 0, 1, 2])

        def block(branch: nn.Module, shortcut: nn.Module, cin: int, cout: int) -> Residual:
            depth = 2 if isinstance(branch, UpBranch) else 3
            options = {"dim": cin, "out_dim": cout, "shortcut": shortcut, "data_format": "channels_first"}
            return self.residual_block(branch, next(rates), depth, next(layers), **options)

        g = generator_class(self.z_dim, self.dim, conditions, class_input=self.class_input, block=block)
        d = discriminator_class(d_dim, projected, codes=head, block=block)
        return GAN(self.initialise(g), self.initialise(d), self, conditions, projection)


__all__ = [
    "GAN",
    "GAN_ARCHS",
    "Critic",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "GANConfig",
    "ResNetDiscriminator",
    "ResNetGenerator",
    "conditional_bn",
    "down_block",
    "up_block",
]
