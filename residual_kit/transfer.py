"""Starting from trained weights: load what matches, start anew what does not (a new head), adapt an input layer.

timm's `load_pretrained` does the same for a classifier fine-tuned on new classes (`num_classes` changes, the
head is replaced) and `adapt_input_conv` for images of another number of channels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn


@dataclass
class TransferReport:
    """What `load_matching` did, by parameter name."""

    loaded: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        adapted = f", adapted to the input's channels: {', '.join(self.adapted)}" if self.adapted else ""
        new = f", started anew (no match): {', '.join(self.new)}" if self.new else ""
        return f"{len(self.loaded)} tensors loaded{adapted}{new}"


def adapt_input_conv(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """A convolution's weight (out, in, k, k) for `channels` input channels: summed over its channels for one,
    one channel repeated and scaled by 1/channels for several, others cycled and scaled (timm's
    `adapt_input_conv`), so a grey image and its colour copy give the same output."""
    have = weight.shape[1]
    if channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-channels // have)
    return weight.repeat(1, repeats, 1, 1)[:, :channels] * (have / channels)


def load_matching(net: nn.Module, state: dict[str, torch.Tensor]) -> TransferReport:
    """Load the tensors of `state` whose names and shapes match `net`'s; the first convolution's weight, where only
    its input channels differ, adapted (`adapt_input_conv`); every other tensor of `net` keeps its init."""
    own = net.state_dict()
    first_conv = next((n for n, t in own.items() if t.ndim == 4), None)
    report, loaded = TransferReport(), {}
    for name, tensor in own.items():
        theirs = state.get(name)
        if theirs is not None and theirs.shape == tensor.shape:
            loaded[name] = theirs
            report.loaded.append(name)
        elif theirs is not None and name == first_conv and theirs.shape[0] == tensor.shape[0]:
            loaded[name] = adapt_input_conv(theirs, tensor.shape[1])
            report.adapted.append(name)
        else:
            report.new.append(name)
    if not loaded:
        raise ValueError("none of the weights match this network: was it trained with another architecture?")
    net.load_state_dict(loaded, strict=False)
    return report


def initial_weights(source: str, arch: str) -> dict[str, torch.Tensor]:
    """The network weights of a checkpoint path that a task's `fit` wrote, or of the shipped weights named `source`
    for the model `arch` (SHA-256 checked)."""
    from .models.checkpoint import read_entry
    from .pretrained import pretrained_path

    path = Path(source)
    if not path.is_file():
        if any(sep in source for sep in ("/", "\\")) or source.endswith(".ckpt"):
            raise FileNotFoundError(f"init_from {source} does not exist: pass a checkpoint or a shipped name")
        path = pretrained_path(arch, source)
    _, weights = read_entry(path)
    return {k.removeprefix("net."): v for k, v in weights.items() if k.startswith("net.")}


__all__ = ["TransferReport", "adapt_input_conv", "initial_weights", "load_matching"]
