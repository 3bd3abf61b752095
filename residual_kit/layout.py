"""Where the feature axis lives: last for sequences (B, T, D), second for conv features (B, C, H, W)."""

from __future__ import annotations

from typing import Literal

import torch

DataFormat = Literal["channels_last", "channels_first"]
DATA_FORMATS: tuple[str, ...] = ("channels_last", "channels_first")


def check_data_format(data_format: str) -> DataFormat:
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format={data_format!r} is not one of {DATA_FORMATS}")
    return data_format  # type: ignore[return-value]


def feature_axis(data_format: DataFormat) -> int:
    return 1 if data_format == "channels_first" else -1


def broadcast_channels(v: torch.Tensor, x: torch.Tensor, data_format: DataFormat) -> torch.Tensor:
    """Reshape a per-channel vector (C,) so it broadcasts against `x` along the feature axis."""
    if data_format == "channels_first":
        return v.reshape((-1,) + (1,) * (x.ndim - 2))  # (C, 1, 1, ...)
    return v
