"""Stacked LSTMs (or GRUs) with residual connections between layers (GNMT, Wu et al. 2016, §3.1).

A deep LSTM stack stops training well beyond four layers; GNMT adds x_l + LSTM_l(x_l) from its third
layer on and trains eight. Here each such layer is `Residual(wrap=nn.LSTM(...))`: the residual applies
to the output sequence and the (h, c) state passes through untouched. `nn.GRU` drops in (`cell="gru"`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from ..norm import make_norm
from ..residual import Residual
from ..stack import build_stack
from .options import ModelPlacement, ResidualOptions

CELLS: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU}
Cell = Literal["lstm", "gru"]


@dataclass
class LSTMConfig(ResidualOptions):
    """A stack of LSTM layers whose layers from `residual_from` on are residual (`ResidualOptions` for them).

    Args:
        input_size: features per time step of the input; None: `dim`.
        dim: output width of every layer (both directions together when bidirectional).
        layers: LSTM layers.
        residual: False: no layer is residual (the plain stack).
        residual_from: index of the first residual layer (0: all, 1: all but the first, GNMT: 2).
        bidirectional: read each sequence both ways (each direction has dim // 2 units).
        dropout: dropout on the input of every layer after the first.
        stack: how the residual layers are joined, a name in `residual_kit.STACKS` ("plain", "dense", "hyper",
            "mhc"); a design keeps one width, so a first residual layer that changes it stays plain.
        stack_options: the design's own options, e.g. {"streams": 4} for "hyper".
        cell: the recurrent layer, "lstm" (`nn.LSTM`) or "gru" (`nn.GRU`, Cho et al. 2014).
    """

    input_size: int | None = None
    dim: int = 128
    layers: int = 4
    residual: bool = True
    residual_from: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    stack: str = "plain"
    stack_options: dict[str, Any] = field(default_factory=dict)
    cell: Cell = "lstm"
    placement: ModelPlacement | None = field(default="pre", kw_only=True)

    def build(self) -> LSTMStack:
        return LSTMStack(self)


class LSTMLayer(nn.Module):
    """Dropout, then an LSTM (or a GRU, held under its cell's name): (B, T, C) -> ((B, T, dim), state)."""

    def __init__(self, input_size: int, dim: int, bidirectional: bool, dropout: float, cell: Cell = "lstm") -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell={cell!r} is not one of {tuple(CELLS)}")
        self.cell = cell
        self.drop = nn.Dropout(dropout)
        hidden = dim // 2 if bidirectional else dim
        self.add_module(cell, CELLS[cell](input_size, hidden, batch_first=True, bidirectional=bidirectional))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        return self.get_submodule(self.cell)(self.drop(x))


class LSTMStack(nn.Module):
    """N LSTM layers on (B, T, C) sequences: the plain first ones, then the residual ones in a stack design."""

    def __init__(self, config: LSTMConfig) -> None:
        super().__init__()
        c = self.config = config
        c.check_residual_options()
        if c.bidirectional and c.dim % 2:
            raise ValueError(f"dim={c.dim} must be even with bidirectional=True (half per direction)")
        if c.layers < 1 or c.residual_from < 0:
            raise ValueError(f"need layers >= 1 and residual_from >= 0, got {c.layers} and {c.residual_from}")
        input_size = c.input_size or c.dim
        first = c.residual_from if c.residual else c.layers
        if c.stack != "plain":  # a stack design keeps one width: a first layer that changes it stays plain
            first = max(first, int(input_size != c.dim))
        if first >= c.layers:
            c.refuse_residual_options(f"no layer is residual (residual={c.residual}, layers={c.layers})")
            if c.stack != "plain":
                raise ValueError(f"stack={c.stack!r} cannot apply: no layer is residual")
        widths = [input_size] + [c.dim] * (c.layers - 1)
        rates = iter(c.drop_path_rates(max(1, c.layers - first)))
        self.layers, residual = nn.ModuleList(), []
        for i, width in enumerate(widths):
            layer = LSTMLayer(width, c.dim, c.bidirectional, c.dropout if i else 0.0, c.cell)
            if i < first:
                self.layers.append(layer)
            else:  # a projection shortcut where the widths differ (only ever the first layer)
                shortcut = "projection" if width != c.dim else "identity"
                block = {"dim": width, "out_dim": c.dim, "shortcut": shortcut}  # of the stack of residual layers:
                residual.append(c.residual_block(layer, next(rates), c.layers - first, i - first, **block))
        self.stack = build_stack(c.stack, residual, c.dim, c.stack_options) if residual else nn.Identity()
        c.initialise(self)

    @property
    def residual_layers(self) -> int:
        return sum(isinstance(m, Residual) for m in self.stack.modules())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, input_size) -> (B, T, dim)."""
        for layer in self.layers:
            x = layer(x)[0]
        return self.stack(x)


@dataclass
class RecurrentLMConfig(LSTMConfig):
    """A language model over tokens (bytes by default): embedding -> the LSTM or GRU stack (`LSTMConfig`, every
    layer residual) -> the final norm a pre-norm stream needs -> head tied to the embedding.

    Args:
        vocab_size: tokens.
    """

    vocab_size: int = 256
    residual_from: int = 0

    def build(self) -> RecurrentLM:
        return RecurrentLM(self)


class RecurrentLM(nn.Module):
    """Token ids (B, T) -> next-token logits (B, T, vocab), reading left to right."""

    def __init__(self, config: RecurrentLMConfig) -> None:
        super().__init__()
        c = self.config = config
        if c.bidirectional:
            raise ValueError("bidirectional=True cannot apply: a language model must not read the tokens it predicts")
        if c.input_size not in (None, c.dim):
            raise ValueError(f"input_size={c.input_size} cannot apply: the stack reads the embedding at dim={c.dim}")
        self.tok = nn.Embedding(c.vocab_size, c.dim)
        nn.init.normal_(self.tok.weight, std=0.02)
        self.stack = LSTMStack(c)
        self.norm = make_norm(c.final_norm(), c.dim)
        self.head = nn.Linear(c.dim, c.vocab_size, bias=False)
        self.head.weight = self.tok.weight  # tied (Press & Wolf 2017)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.stack(self.tok(idx))))


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
class LSTMReaderConfig(LSTMConfig):
    """A line reader, configured once: column features -> LSTM stack (`LSTMConfig`) -> per-step classes (CTC).

    Args:
        conv_frontend: a small CNN turns columns into features; False feeds raw pixel columns.
        num_classes: output classes per step, the CTC blank included.
        bidirectional: read lines both ways.
    """

    conv_frontend: bool = True
    num_classes: int = 11
    bidirectional: bool = True

    def build(self) -> LSTMReader:
        return LSTMReader(self)


class LSTMReader(nn.Module):
    """(B, 1, 28, W) images -> per-step log-probabilities (B, T, num_classes), T = W/4 (W with no front end)."""

    def __init__(self, config: LSTMReaderConfig) -> None:
        super().__init__()
        c = self.config = config
        if c.input_size is not None:
            raise ValueError(f"input_size={c.input_size} cannot apply: the reader's LSTMs read its features at dim")
        self.frontend = ColumnEncoder() if c.conv_frontend else Columns()
        self.proj = nn.Linear(self.frontend.out_features, c.dim)
        self.lstm = LSTMStack(c)
        self.head = nn.Linear(c.dim, c.num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.proj(self.frontend(images)))).log_softmax(-1)


__all__ = [
    "CELLS",
    "ColumnEncoder",
    "Columns",
    "LSTMConfig",
    "LSTMLayer",
    "LSTMReader",
    "LSTMReaderConfig",
    "LSTMStack",
    "RecurrentLM",
    "RecurrentLMConfig",
]
