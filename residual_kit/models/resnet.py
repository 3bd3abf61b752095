"""ResNets (He et al. 2015, 2016) built only from `Residual` and their branch modules.

CIFAR-style ResNet-(6n+2) (20, 32, 44, 56, 110, ...): three stages of 16/32/64 channels, option A (pad) or
B (projection) shortcuts. ImageNet-style ResNet-18/34/50 (basic and bottleneck blocks) with a 3x3 stem and
no max-pool, which suits 28x28 and 32x32 inputs. `placement` takes `Residual`'s values:
    None        y = relu(x + F(x))                  ResNet v1 (He et al. 2015)
    "pre"       y = x + F(relu(N(x)))               ResNet v2, full pre-activation (He et al. 2016)
    "sandwich"  y = x + N2(F(relu(N1(x))))          v2 with a norm closing the branch
    "post"      y = relu(N(x + F(x)))               BN after addition (He et al. 2016, Fig. 4b)
    "deepnorm"  y = relu(N(alpha x + F(x)))         DeepNet's post-norm, alpha = (2N)^1/4 (Wang et al. 2022)
`residual=False` gives the same network with no shortcut in any block (the paper's plain nets). DeepNet's beta
(the branch's init gain) has no effect here: each v1 branch ends in a BatchNorm, which undoes any scale of the
convs before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from ..merge import Add
from ..norm import make_norm
from ..registry import Registry
from ..shortcut import SHORTCUTS
from .options import ResidualOptions

BlockKind = Literal["basic", "bottleneck"]
PREACT = ("pre", "sandwich")  # placements whose norm comes before the branch, with its ReLU opening the branch


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


def bn_relu(channels: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]


def basic_branch(cin: int, cout: int, stride: int, preact: bool) -> nn.Sequential:
    """F(x) = BN(conv(ReLU(BN(conv(x))))); in v2 the branch opens with the ReLU after the block's pre-norm and
    ends with its conv."""
    if preact:
        return nn.Sequential(nn.ReLU(inplace=True), conv3x3(cin, cout, stride), *bn_relu(cout), conv3x3(cout, cout))
    return nn.Sequential(conv3x3(cin, cout, stride), *bn_relu(cout), conv3x3(cout, cout), nn.BatchNorm2d(cout))


def bottleneck_branch(cin: int, cout: int, stride: int, preact: bool, expansion: int = 4) -> nn.Sequential:
    """F(x) = 1x1 reduce -> 3x3 (strided, as torchvision's v1.5) -> 1x1 expand to `cout`."""
    mid = cout // expansion
    layers: list[nn.Module] = [nn.ReLU(inplace=True)] if preact else []
    layers += [conv1x1(cin, mid), *bn_relu(mid), conv3x3(mid, mid, stride), *bn_relu(mid), conv1x1(mid, cout)]
    if not preact:
        layers.append(nn.BatchNorm2d(cout))
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class ResNetLayout:
    """The shape of one ResNet: block kind, blocks per stage, stage widths, stem width, default shortcut."""

    block: BlockKind
    layers: tuple[int, ...]
    widths: tuple[int, ...]
    stem: int
    shortcut: str


def cifar_layout(depth: int) -> ResNetLayout:
    """ResNet-(6n+2) of He et al. 2015 §4.2: n basic blocks in each of three stages (16/32/64), option A."""
    if (depth - 2) % 6 != 0 or depth < 8:
        raise ValueError(f"a CIFAR ResNet has 6n+2 layers (8, 14, 20, 32, 44, 56, 110, ...), got depth={depth}")
    n = (depth - 2) // 6
    return ResNetLayout("basic", (n, n, n), (16, 32, 64), 16, "pad")


RESNETS: Registry[ResNetLayout] = Registry(
    "arch",
    {
        **{f"resnet{d}": cifar_layout(d) for d in (8, 14, 20, 32, 44, 56, 110)},
        "resnet18": ResNetLayout("basic", (2, 2, 2, 2), (64, 128, 256, 512), 64, "projection"),
        "resnet34": ResNetLayout("basic", (3, 4, 6, 3), (64, 128, 256, 512), 64, "projection"),
        "resnet50": ResNetLayout("bottleneck", (3, 4, 6, 3), (64, 128, 256, 512), 64, "projection"),
    },
    home="residual_kit.models.resnet.RESNETS",
)
"""ResNet layouts by name; any other `resnet<6n+2>` is a CIFAR ResNet too (`layout_of`)."""


def layout_of(arch: str) -> ResNetLayout:
    """The layout of a registered ResNet, or of `resnet<6n+2>` for any n."""
    match = re.fullmatch(r"resnet(\d+)", arch)
    if arch not in RESNETS and match and (int(match[1]) - 2) % 6 == 0:
        return cifar_layout(int(match[1]))
    return RESNETS.get_builder(arch)


@dataclass
class ResNetConfig(ResidualOptions):
    """A ResNet, configured once: its layout by name and the residual options (`ResidualOptions`).

    Args:
        arch: a name in `RESNETS` ("resnet20", "resnet56", "resnet18", ...) or any "resnet<6n+2>".
        num_classes: classifier outputs.
        in_channels: image channels (1 for digits, 3 for CIFAR-10).
        width_multiplier: multiplier on every width.
        shortcut: where a block changes shape, a name in `SHORTCUTS`: "pad" (option A, parameter-free) or
            "projection" (option B); None: the layout's own ("pad" for the CIFAR ResNets, else "projection").
        residual: False gives the same network with no shortcut in any block (the plain net).
        norm: the norm that `placement` puts in ("batch" as He et al.); in "pre" and "sandwich" a ReLU follows it
            (pre-activation).
    """

    arch: str = "resnet20"
    num_classes: int = 10
    in_channels: int = 1
    width_multiplier: float = 1.0
    shortcut: str | None = None
    residual: bool = True
    norm: str = field(default="batch", kw_only=True)

    def build(self) -> ResNet:
        return ResNet(self)


class ResNet(nn.Module):
    """stem -> stages of residual blocks -> global average pool -> linear classifier (see `ResNetConfig`)."""

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        c, layout = config, layout_of(config.arch)
        c.check_residual_options()
        if c.placement == "mix":
            raise ValueError(
                "placement='mix' (Mix-LN) cannot apply: a ResNet is pre-activation throughout or not at all"
            )
        self.config = c
        shortcut = c.shortcut or layout.shortcut
        SHORTCUTS.check(shortcut)
        if not c.residual:
            for name in ("scale", "drop_path", "merge"):
                if name in c.changed_residual_options():
                    raise ValueError(f"{name}={getattr(c, name)!r} cannot apply: residual=False has no shortcut")
            if c.placement == "deepnorm":
                raise ValueError("placement='deepnorm' weights the shortcut, and residual=False has none")
        preact = c.placement in PREACT
        expansion = 4 if layout.block == "bottleneck" else 1
        stem = max(1, round(layout.stem * c.width_multiplier))
        self.stem = nn.Sequential(conv3x3(c.in_channels, stem), *([] if preact else bn_relu(stem)))

        total, index, cin = sum(layout.layers), 0, stem
        rates = c.drop_path_rates(total)
        make_branch = basic_branch if layout.block == "basic" else bottleneck_branch
        stages = []
        for stage, (n, w) in enumerate(zip(layout.layers, layout.widths, strict=True)):
            cout = max(1, round(w * c.width_multiplier)) * expansion
            blocks = []
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                branch = make_branch(cin, cout, stride, preact)
                reshapes = stride != 1 or cin != cout  # the builder, not the block, picks the shortcut
                blocks.append(
                    c.residual_block(
                        branch, rates[index], total, dim=cin, out_dim=cout, stride=stride, data_format="channels_first",
                        shortcut=shortcut if reshapes and c.residual else "identity",
                        merge=_merge(c), activation=None if preact else "relu",
                    )
                )  # fmt: skip
                cin, index = cout, index + 1
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.num_features = cin
        closing = [make_norm(c.norm, cin, "channels_first"), nn.ReLU(inplace=True)] if preact else []
        self.head = nn.Sequential(*closing, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, c.num_classes))
        self.reset_parameters()
        c.initialise(self)

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's feature map (B, num_features, H', W') (timm's name)."""
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool and classify; with `pre_logits`, the pooled features (B, num_features) (what digit-FID reads)."""
        return self.head[:-1](x) if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))  # (B, num_classes)


def _merge(c: ResNetConfig) -> str | nn.Module:
    """The merge: no shortcut in the plain net; an in-place add where it adds, as torchvision's `out += identity`
    (every branch ends in a BN or a conv, whose backward does not need its output)."""
    if not c.residual:
        return "none"
    return Add(inplace=True) if c.merge == "add" else c.merge


__all__ = ["RESNETS", "ResNet", "ResNetConfig", "ResNetLayout", "cifar_layout", "layout_of"]
