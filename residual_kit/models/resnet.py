"""ResNets (He et al. 2015, 2016) built only from `Residual` and their branch modules.

CIFAR-style ResNet-{20,32,44,56,110}: 6n+2 layers, three stages of 16/32/64 channels, option A (pad)
or B (projection) shortcuts. ImageNet-style ResNet-18/34/50 (basic and bottleneck blocks) with a 3x3
stem and no max-pool, which suits 28x28 and 32x32 inputs. The options use `Residual`'s names:
    placement=None        y = relu(x + F(x))                  ResNet v1 (He et al. 2015)
    placement="pre"       y = x + F(relu(BN(x)))              ResNet v2, full pre-activation (He et al. 2016)
    placement="post"      y = relu(BN(x + F(x)))              BN after addition (He et al. 2016, Fig. 4b)
    placement="deepnorm"  y = relu(BN(alpha x + F(x)))        DeepNet's post-norm, alpha = (2N)^1/4 (Wang et al. 2022)
`residual=False` removes every shortcut (the paper's plain nets). DeepNet's beta (the branch's init gain)
has no effect here: each branch ends in a BatchNorm, which undoes any scale of the convs before it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Literal

import torch
from torch import nn

from ..deepnorm import deepnorm_alpha
from ..drop_path import drop_path_rates
from ..init import zero_init_last_
from ..merge import MERGES, Add, ScaledAdd
from ..residual import Residual
from ..shortcut import SHORTCUTS

Shortcut = str  # a name in SHORTCUTS: "pad" (option A), "projection" (option B), or a registered one
Placement = Literal["pre", "post", "deepnorm"]
BlockKind = Literal["basic", "bottleneck"]


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


def bn_relu(channels: int) -> nn.Sequential:
    """The pre-activation 'norm' of ResNet v2: BN then ReLU."""
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


def basic_branch(cin: int, cout: int, stride: int, preact: bool) -> nn.Sequential:
    """F(x) = BN(conv(ReLU(BN(conv(x))))); in v2 the leading BN-ReLU is the block's pre-norm."""
    if preact:
        return nn.Sequential(conv3x3(cin, cout, stride), *bn_relu(cout), conv3x3(cout, cout))
    return nn.Sequential(
        conv3x3(cin, cout, stride),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        conv3x3(cout, cout),
        nn.BatchNorm2d(cout),
    )


def bottleneck_branch(cin: int, cout: int, stride: int, preact: bool, expansion: int = 4) -> nn.Sequential:
    """F(x) = 1x1 reduce -> 3x3 (strided, as torchvision's v1.5) -> 1x1 expand to `cout`."""
    mid = cout // expansion
    layers: list[nn.Module] = [conv1x1(cin, mid), *bn_relu(mid), conv3x3(mid, mid, stride), *bn_relu(mid)]
    layers.append(conv1x1(mid, cout))
    if not preact:
        layers.append(nn.BatchNorm2d(cout))
    return nn.Sequential(*layers)


def make_block(
    branch: nn.Module,
    cin: int,
    cout: int,
    stride: int,
    shortcut: Shortcut,
    placement: Placement | None,
    residual: bool,
    num_blocks: int,
    drop_path: float = 0.0,
    scale: float | str | None = None,
    merge: str = "add",
) -> nn.Module:
    """Wrap a branch into a residual block; the builder, not the block, picks the shortcut."""
    preact = placement == "pre"
    if not residual:
        return nn.Sequential(*bn_relu(cin), branch) if preact else nn.Sequential(branch, nn.ReLU(inplace=True))
    post = placement in ("post", "deepnorm")
    return Residual(
        branch,
        norm=bn_relu if preact else nn.BatchNorm2d if post else None,
        placement="pre" if preact else "post" if post else None,
        dim=cin,
        out_dim=cout,
        stride=stride,
        data_format="channels_first",
        shortcut="identity" if stride == 1 and cin == cout else shortcut,
        scale=scale,
        drop_path=drop_path,
        merge=ScaledAdd(deepnorm_alpha(num_blocks), inplace=True) if placement == "deepnorm" else in_place(merge),
        activation=None if preact else "relu",
    )


def in_place(merge: str) -> str | nn.Module:
    """The merge, as `out += identity` where it adds: every branch here ends in a BN or a conv, whose
    backward does not need its output (torchvision and timm add in place for the same reason)."""
    return Add(inplace=True) if merge == "add" else merge


class ResNet(nn.Module):
    """stem -> stages of residual blocks -> global average pool -> linear classifier.

    Args:
        block: "basic" (two 3x3 convs) or "bottleneck" (1x1, 3x3, 1x1 with 4x expansion).
        layers: blocks per stage.
        widths: output channels per stage (before the width multiplier).
        num_classes: classifier outputs.
        in_channels: image channels (1 for digits, 3 for CIFAR-10).
        stem_width: channels after the stem (before the width multiplier).
        width: multiplier on every width.
        shortcut: where a block changes shape, a name in `SHORTCUTS`: "pad" (option A, parameter-free)
            or "projection" (option B).
        placement: None (v1), "pre" (v2), "post" (BN after the addition) or "deepnorm" (see the module doc).
        residual: False removes every shortcut (the plain net).
        drop_path: stochastic depth rate of the last block, rising linearly from 0 (Huang et al. 2016).
        scale: branch scale passed to every `Residual` (e.g. "rezero", "layerscale", 0.5).
        zero_init_last: start each branch's last layer at zero (the BN's gamma in v1, the conv in v2), so
            each block starts as the identity (`residual_kit.init.zero_init_last_`).
        merge: how shortcut and branch meet, a name in `MERGES`: "add"; "gate" (highway); "concat"
            (concat + 1x1 fuse).
    """

    def __init__(
        self,
        block: BlockKind = "basic",
        layers: tuple[int, ...] = (3, 3, 3),
        widths: tuple[int, ...] = (16, 32, 64),
        num_classes: int = 10,
        in_channels: int = 3,
        stem_width: int = 16,
        width: float = 1.0,
        shortcut: Shortcut = "pad",
        placement: Placement | None = None,
        residual: bool = True,
        drop_path: float = 0.0,
        scale: float | str | None = None,
        zero_init_last: bool = False,
        merge: str = "add",
    ) -> None:
        super().__init__()
        MERGES.check(merge)
        SHORTCUTS.check(shortcut)
        for name, value, allowed in (
            ("block", block, ("basic", "bottleneck")),
            ("placement", placement, (None, "pre", "post", "deepnorm")),
        ):
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is not one of {allowed}")
        preact = placement == "pre"
        if len(layers) != len(widths):
            raise ValueError(f"layers {layers} and widths {widths} must have one entry per stage")
        expansion = 4 if block == "bottleneck" else 1
        stem = max(1, round(stem_width * width))
        self.stem = (
            nn.Sequential(conv3x3(in_channels, stem))
            if preact
            else nn.Sequential(conv3x3(in_channels, stem), *bn_relu(stem))
        )

        total, index, cin = sum(layers), 0, stem
        rates = drop_path_rates(drop_path, total)
        stages = []
        for stage, (n, w) in enumerate(zip(layers, widths, strict=True)):
            cout = max(1, round(w * width)) * expansion
            blocks = []
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                branch = (basic_branch if block == "basic" else bottleneck_branch)(cin, cout, stride, preact)
                options = (shortcut, placement, residual, total, rates[index], scale, merge)
                blocks.append(make_block(branch, cin, cout, stride, *options))
                cin, index = cout, index + 1
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.num_features = cin
        head: list[nn.Module] = [*bn_relu(cin)] if preact else []
        self.head = nn.Sequential(*head, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))
        self.reset_parameters(zero_init_last)

    def reset_parameters(self, zero_init_last: bool = False) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_last:
            zero_init_last_(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's feature map (B, num_features, H', W') (timm's name)."""
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool and classify; with `pre_logits`, the pooled features (B, num_features) (what digit-FID reads)."""
        return self.head[:-1](x) if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))  # (B, num_classes)


def cifar_resnet(depth: int = 20, **kwargs) -> ResNet:
    """ResNet-(6n+2) of He et al. 2015 §4.2: n basic blocks in each of three stages (16/32/64)."""
    if (depth - 2) % 6 != 0 or depth < 8:
        raise ValueError(f"a CIFAR ResNet has 6n+2 layers (8, 14, 20, 32, 44, 56, 110, ...), got depth={depth}")
    n = (depth - 2) // 6
    if kwargs.get("shortcut") is None:
        kwargs["shortcut"] = "pad"
    return ResNet("basic", (n, n, n), (16, 32, 64), stem_width=16, **kwargs)


IMAGENET_LAYOUTS: dict[int, tuple[BlockKind, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
}


def imagenet_resnet(depth: int = 18, **kwargs) -> ResNet:
    """ResNet-18/34/50 with a 3x3 stride-1 stem for small images; projection (B) shortcuts by default."""
    if depth not in IMAGENET_LAYOUTS:
        raise ValueError(f"depth={depth} is not one of {sorted(IMAGENET_LAYOUTS)}")
    block, layers = IMAGENET_LAYOUTS[depth]
    if kwargs.get("shortcut") is None:
        kwargs["shortcut"] = "projection"
    return ResNet(block, layers, (64, 128, 256, 512), stem_width=64, **kwargs)


RESNETS: dict[str, Callable[..., ResNet]] = {
    **{f"resnet{d}": partial(cifar_resnet, d) for d in (8, 14, 20, 32, 44, 56, 110)},
    **{f"resnet{d}": partial(imagenet_resnet, d) for d in IMAGENET_LAYOUTS},
}


@dataclass
class ResNetConfig:
    """A ResNet, configured once: the registry name and the options of `ResNet` (see there).

    `shortcut=None` takes the architecture's own: "pad" for the CIFAR ResNets, "projection" for 18/34/50.
    """

    arch: str = "resnet20"
    num_classes: int = 10
    in_channels: int = 1
    width: float = 1.0
    placement: Placement | None = None
    shortcut: Shortcut | None = None
    residual: bool = True
    scale: float | str | None = None
    merge: str = "add"
    drop_path: float = 0.0
    zero_init_last: bool = False

    def build(self) -> ResNet:
        if self.arch not in RESNETS:
            raise ValueError(f"unknown ResNet {self.arch!r}; choose one of {list(RESNETS)}")
        options = asdict(self)
        return RESNETS[options.pop("arch")](**options)
