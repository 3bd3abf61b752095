"""Trained weights that ship with the package: `create_model("resnet20", pretrained="digits")`, offline.

Each entry names a file under `residual_kit/weights/` (a slim task checkpoint: the network's config and weights),
its SHA-256, checked on every load, what the network expects of its input, and the command that trained it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from .registry import Registry

WEIGHTS = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class Pretrained:
    """A shipped weight file of a registered model.

    Args:
        file: its name under `residual_kit/weights/`.
        sha256: its SHA-256, checked on load.
        preprocessing: what an input must be: channels, size, the per-channel mean and std to normalise by, and
            the class names of the outputs.
        trained_by: the command that trained it, and on what data.
    """

    file: str
    sha256: str
    preprocessing: dict[str, Any] = field(default_factory=dict)
    trained_by: str = ""


PRETRAINED: Registry[Pretrained] = Registry(
    "pretrained weights",
    {
        "resnet20.digits": Pretrained(
            "resnet20_digits.pt",
            "02cdeb544ab0ef01e41a00ced89add41a420f113b88d0605ed92e59c858ad368",
            {"channels": 1, "size": 28, "mean": [0.1307], "std": [0.3081], "classes": [str(i) for i in range(10)]},
            "python -m tasks.resnet fit (seed 42): the best checkpoint, trained on 4,000 of the 5,000 embedded MNIST "
            "digits, chosen on 500 others; residual_kit.pretrained.slim wrote it",
        ),
        "gpt.addition": Pretrained(
            "gpt_addition.pt",
            "67c98a4b0aa6929914eb32f84009405f0769aa8fca744e1dfa2b40c865e46cee",
            {"task": "add", "digits": 3, "reverse_answer": True, "vocabulary": "digits"},
            "python -m tasks.transformer fit (seed 42): the best checkpoint, 3-digit addition, its answer reversed; "
            "slim(task=True) wrote it, so DigitTransformer.load_from_checkpoint reads it",
        ),
        "lstm_reader.strips": Pretrained(
            "lstm_reader_strips.pt",
            "016df3181cdc0cd786e6a6d57ae3da89fab29504dece62a378034b194ca7a9aa",
            {"channels": 1, "height": 28, "width": 148, "classes": [str(i) for i in range(10)]},
            "python -m tasks.lstm fit (seed 42): the best checkpoint, strips of 1-5 embedded MNIST digits; "
            "slim(task=True) wrote it, so StripReader.load_from_checkpoint reads it",
        ),
        "resnet_generator.digits": Pretrained(
            "gan_digits.pt",
            "946559087be438c67087b0b8080133cc98ef336e9e930085d88ccd0c7cf6ffc9",
            {"z": "(B, 128) from N(0, 1)", "labels": "(B,) digits 0-9", "output": "(B, 1, 28, 28) in [-1, 1]"},
            "python -m tasks.gan fit (seed 42): the best checkpoint (epoch 15 of 20), trained on the 4,000 embedded "
            "MNIST training digits; slim(task=True) wrote it, so DigitGAN.load_from_checkpoint reads it (the "
            "averaged generator and the discriminator) and create_model the averaged generator",
        ),
    },
    home="residual_kit.pretrained.PRETRAINED",
)
"""Shipped weights by "<model>.<tag>"."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pretrained_path(name: str, tag: str) -> Path:
    """The shipped weight file `tag` of the model `name`, its SHA-256 checked; a one-line error for weights that do
    not ship or a file that is missing or damaged."""
    key = f"{name}.{tag}"
    if key not in PRETRAINED:
        shipped = ", ".join(f'"{k.split(".", 1)[1]}" for {k.split(".", 1)[0]}' for k in PRETRAINED)
        raise ValueError(f"no shipped weights {tag!r} for {name!r}: what ships is {shipped}")
    entry = PRETRAINED[key]
    path = WEIGHTS / entry.file
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from this installation: reinstall residual-kit")
    digest = sha256(path)
    if digest != entry.sha256:
        raise ValueError(
            f"{path} has SHA-256 {digest}, not the {entry.sha256} it shipped with: the file is damaged or was "
            "replaced; reinstall residual-kit"
        )
    return path


def load_pretrained(name: str, tag: str, **overrides: Any) -> nn.Module:
    """The registered model `name` with the shipped weights `tag`, in eval mode, its `preprocessing` attached; a
    file whose SHA-256 is not the one it shipped with is refused in one line."""
    from .models.checkpoint import load_network

    net = load_network(name, pretrained_path(name, tag), **overrides)
    net.preprocessing = dict(PRETRAINED[f"{name}.{tag}"].preprocessing)
    return net


TRAINING_STATE = ("loops", "callbacks", "optimizer_states", "lr_schedulers")
"""What a task checkpoint keeps only to resume training, left out of a shipped file."""


def slim(checkpoint: str | Path, out: str | Path, task: bool = False) -> str:
    """Write the form a shipped weight file has to `out`; its SHA-256. By default the network alone (the
    `residual_kit` entry and the `net.*` weights, for `create_model`); with `task`, the task checkpoint less its
    training state, which the task's module loads (`DigitTransformer.load_from_checkpoint(path)`) and
    `create_model` reads as well."""
    import torch

    from .models.checkpoint import ENTRY, load_state, read_entry

    entry, weights = read_entry(checkpoint)
    if task:
        state = {k: v for k, v in load_state(checkpoint, weights_only=False).items() if k not in TRAINING_STATE}
    else:
        state = {ENTRY: entry, "state_dict": {k: v for k, v in weights.items() if k.startswith("net.")}}
    torch.save(state, out)
    return sha256(Path(out))


__all__ = ["PRETRAINED", "TRAINING_STATE", "WEIGHTS", "Pretrained", "load_pretrained", "pretrained_path", "slim"]
