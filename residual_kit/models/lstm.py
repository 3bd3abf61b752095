"""Stacked LSTMs with residual connections between layers (GNMT, Wu et al. 2016, §3.1).

A deep LSTM stack stops training well beyond four layers; GNMT adds x_l + LSTM_l(x_l) from its third
layer on and trains eight. Here each such layer is `Residual(wrap=nn.LSTM(...))`: the residual applies
to the output sequence and the (h, c) state passes through untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..drop_path import drop_path_rates
from ..residual import Placement, Residual
from ..stack import STACKS


class SequenceOnly(nn.Module):
    """Keeps the output sequence of an LSTM (or a `Residual` around one) and drops its (h, c) state, so the
    layer fits a stack design of `residual_kit.STACKS`, which passes tensors from layer to layer."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor, **kwargs: object) -> torch.Tensor:
        return self.layer(x)[0]


class LSTMStack(nn.Module):
    """N LSTM layers on (B, T, C) sequences; layers from `residual_from` on are residual.

    Args:
        input_size: features per time step.
        hidden_size: output width of every layer (both directions together when bidirectional).
        layers: number of LSTM layers.
        residual_from: index of the first residual layer (0: all, 1: all but the first, GNMT: 2);
            `layers` or more gives the plain stack.
        placement: norm placement of the residual layers: "pre", "post", "sandwich" or None.
        bidirectional: read each sequence both ways (each direction has hidden_size // 2 units).
        dropout: dropout between layers (between the plain layers and before the residual ones when
            `stack` is not "plain").
        drop_path: stochastic depth of the last residual layer, rising linearly from 0.
        stack: how the residual layers are joined, a name in `residual_kit.STACKS`: "plain" (x + LSTM(x)
            per layer), "dense" (DenseFormer's depth-weighted average), "hyper" or "mhc" (hyper-connections
            around pre-norm LSTM branches; the layers' `placement` is then LayerNorm before each LSTM).
        streams: residual streams of "hyper" and "mhc".
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 128,
        layers: int = 4,
        residual_from: int = 1,
        placement: Placement | None = "pre",
        bidirectional: bool = False,
        dropout: float = 0.0,
        drop_path: float = 0.0,
        stack: str = "plain",
        streams: int = 4,
    ) -> None:
        super().__init__()
        if bidirectional and hidden_size % 2:
            raise ValueError(f"hidden_size={hidden_size} must be even with bidirectional=True (half per direction)")
        if layers < 1 or residual_from < 0:
            raise ValueError(f"need layers >= 1 and residual_from >= 0, got {layers} and {residual_from}")
        design = STACKS.get_builder(stack)
        units = hidden_size // 2 if bidirectional else hidden_size
        widths = [input_size] + [hidden_size] * (layers - 1)
        if stack != "plain":  # a stack design keeps one width: a first layer that changes it stays plain
            residual_from = max(residual_from, int(input_size != hidden_size))
        rates = iter(drop_path_rates(drop_path, max(1, layers - residual_from)))
        self.layers, body = nn.ModuleList(), []
        for i, width in enumerate(widths):
            lstm = nn.LSTM(width, units, batch_first=True, bidirectional=bidirectional)
            if i < residual_from:
                self.layers.append(lstm)
            elif stack != "plain" and not design.residual_blocks:  # the design owns the residual
                body.append(SequenceOnly(nn.Sequential(nn.LayerNorm(width), lstm)))
            else:  # a projection shortcut where the widths differ (only ever the first layer)
                shortcut = "projection" if width != hidden_size else "identity"
                block = Residual(wrap=lstm, norm="layer", placement=placement, dim=width, out_dim=hidden_size,
                                 shortcut=shortcut, drop_path=next(rates))  # fmt: skip
                if stack == "plain":
                    self.layers.append(block)
                else:
                    body.append(SequenceOnly(block))
        self.stack = design(body, hidden_size, streams) if body else nn.Identity()
        self.dropout = nn.Dropout(dropout)

    @property
    def residual_layers(self) -> int:
        return sum(isinstance(layer, Residual) for layer in self.layers) + sum(
            isinstance(m, SequenceOnly) for m in self.stack.modules()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, input_size) -> (B, T, hidden_size)."""
        for i, layer in enumerate(self.layers):
            x = layer(self.dropout(x) if i else x)[0]  # LSTM and Residual(LSTM) both return (y, (h, c))
        return self.stack(self.dropout(x) if len(self.layers) else x)


class ColumnEncoder(nn.Module):
    """Conv front end: (B, 1, 28, W) -> (B, W/4, 64 * 7), one feature vector per 4 pixel columns."""

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        half = channels // 2
        self.net = nn.Sequential(
            nn.Conv2d(1, half, 3, padding=1), nn.BatchNorm2d(half), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(half, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )  # fmt: skip
        self.out_features = channels * 7

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1, 2).transpose(1, 2)  # (B, C, 7, W/4) -> (B, W/4, C*7)


class Columns(nn.Module):
    """No front end: each pixel column is one step, (B, 1, 28, W) -> (B, W, 28)."""

    out_features = 28

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.squeeze(1).transpose(1, 2)


@dataclass
class LSTMReaderConfig:
    """A line reader, configured once: column features -> LSTM stack -> per-step classes (for CTC).

    Args:
        layers: LSTM layers.
        hidden_size: width of every LSTM layer.
        residual: residual connections between layers; False gives the plain stack.
        residual_from: first residual layer (1: every layer after the first; GNMT uses 2).
        placement: norm placement of the residual layers: "pre", "post", "sandwich" or None.
        bidirectional: read lines both ways.
        conv_frontend: a small CNN turns columns into features; False feeds raw pixel columns.
        dropout: dropout between LSTM layers.
        drop_path: stochastic depth of the last residual layer, rising linearly from 0.
        stack: how the residual layers are joined, a name in `residual_kit.STACKS` (see `LSTMStack`).
        streams: residual streams of stack="hyper" and "mhc".
        num_classes: output classes per step, the CTC blank included.
    """

    layers: int = 4
    hidden_size: int = 128
    residual: bool = True
    residual_from: int = 1
    placement: Placement | None = "pre"
    bidirectional: bool = True
    conv_frontend: bool = True
    dropout: float = 0.0
    drop_path: float = 0.0
    stack: str = "plain"
    streams: int = 4
    num_classes: int = 11


class LSTMReader(nn.Module):
    """(B, 1, 28, W) images -> per-step log-probabilities (B, T, num_classes), T = W/4 (W with no front end)."""

    def __init__(self, config: LSTMReaderConfig) -> None:
        super().__init__()
        c = self.config = config
        self.frontend = ColumnEncoder() if c.conv_frontend else Columns()
        self.proj = nn.Linear(self.frontend.out_features, c.hidden_size)
        first = c.residual_from if c.residual else c.layers
        self.lstm = LSTMStack(
            c.hidden_size, c.hidden_size, c.layers, first, c.placement, c.bidirectional, c.dropout,
            c.drop_path, c.stack, c.streams,
        )  # fmt: skip
        self.head = nn.Linear(c.hidden_size, c.num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.proj(self.frontend(images)))).log_softmax(-1)


__all__ = ["ColumnEncoder", "Columns", "LSTMReader", "LSTMReaderConfig", "LSTMStack", "SequenceOnly"]
