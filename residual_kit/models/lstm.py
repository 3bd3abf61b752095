"""Stacked LSTMs with residual connections between layers (GNMT, Wu et al. 2016, §3.1).

A deep LSTM stack stops training well beyond four layers; GNMT adds x_l + LSTM_l(x_l) from its third
layer on and trains eight. Here each such layer is `Residual(wrap=nn.LSTM(...))`: the residual applies
to the output sequence and the (h, c) state passes through untouched.
"""

from __future__ import annotations

import torch
from torch import nn

from ..residual import Placement, Residual


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
        dropout: dropout between layers.
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
    ) -> None:
        super().__init__()
        if bidirectional and hidden_size % 2:
            raise ValueError(f"hidden_size={hidden_size} must be even with bidirectional=True (half per direction)")
        if layers < 1 or residual_from < 0:
            raise ValueError(f"need layers >= 1 and residual_from >= 0, got {layers} and {residual_from}")
        units = hidden_size // 2 if bidirectional else hidden_size
        self.layers = nn.ModuleList()
        for i in range(layers):
            width = input_size if i == 0 else hidden_size
            lstm = nn.LSTM(width, units, batch_first=True, bidirectional=bidirectional)
            if i < residual_from:
                self.layers.append(lstm)
            else:  # a projection shortcut where the widths differ (only ever the first layer)
                shortcut = "projection" if width != hidden_size else "identity"
                block = Residual(wrap=lstm, norm="layer", placement=placement, dim=width, out_dim=hidden_size,
                                 shortcut=shortcut)  # fmt: skip
                self.layers.append(block)
        self.dropout = nn.Dropout(dropout)

    @property
    def residual_layers(self) -> int:
        return sum(isinstance(layer, Residual) for layer in self.layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, input_size) -> (B, T, hidden_size)."""
        for i, layer in enumerate(self.layers):
            x = layer(self.dropout(x) if i else x)[0]  # LSTM and Residual(LSTM) both return (y, (h, c))
        return x


__all__ = ["LSTMStack"]
