"""A network out of a task's checkpoint, with no Lightning: `create_model(name, checkpoint=path)`.

Every task writes, beside Lightning's own entries, a `residual_kit` entry: the version, the network's config
class and fields, and its build arguments. The weights are the task's `net.*` (a GAN's generator: the
averaged one, `ema.module.*`, which draws its samples).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__

ENTRY = "residual_kit"


def network_entry(net: nn.Module) -> dict[str, Any]:
    """What a checkpoint keeps of a network built from a config: the version, config class and fields, build
    arguments. A built network carries `config` (and `build_args`, where `build` took any)."""
    config = net.config
    return {
        "version": __version__,
        "config_class": type(config).__name__,
        "config": dataclasses.asdict(config),
        "build_args": dict(getattr(net, "build_args", {})),
    }


def load_state(path: str | Path, weights_only: bool = True) -> dict[str, Any]:
    """A checkpoint's contents, or a one-line error for a missing, unreadable or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist: pass the path of a .ckpt that a task's `fit` wrote")
    try:
        state = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as err:
        raise ValueError(f"checkpoint {path} cannot be read (truncated or not a checkpoint): {err}") from err
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a checkpoint of a residual-kit task: pass a .ckpt that `fit` wrote")
    return state


def require_entry(state: dict[str, Any], path: str | Path, retrain: str = "the task's `fit`") -> dict[str, Any]:
    """The checkpoint's `residual_kit` entry, or the one line that says it is of 0.2.0 or earlier and how to
    retrain (`retrain`: the command)."""
    if ENTRY not in state:
        raise ValueError(
            f"{path} was written by residual-kit 0.2.0 or earlier, whose checkpoints {__version__} does not load "
            f"(the model options were renamed, see CHANGELOG.md): retrain it with {retrain}"
        )
    return state[ENTRY]


def read_entry(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The `residual_kit` entry and the state dict of a checkpoint, or a one-line error that says what is wrong."""
    state = load_state(path)
    if "state_dict" not in state:
        raise ValueError(f"{path} is not a checkpoint of a residual-kit task: pass a .ckpt that `fit` wrote")
    return require_entry(state, path), state["state_dict"]


def load_network(name: str, path: str | Path, **overrides: Any) -> nn.Module:
    """The registered model `name` with the options and weights of a task's checkpoint (`overrides` win)."""
    from . import MODELS

    model = MODELS.get_builder(name)
    entry, weights = read_entry(path)
    if entry["config_class"] != model.config.__name__:
        raise ValueError(f"{path} holds a {entry['config_class']} network, not {name} (a {model.config.__name__})")
    build_args = {**entry["build_args"], **{k: overrides.pop(k) for k in model.build_args if k in overrides}}
    config = {**entry["config"], **overrides}
    clash = {k: config[k] for k, v in model.fixed.items() if k in config and config[k] != v}
    if clash:
        key = next(iter(clash))
        raise ValueError(f"{path} holds {key}={clash[key]!r}, not {name}'s {model.fixed[key]!r}: pass that name")
    config = {k: v for k, v in config.items() if k not in model.fixed}
    net = model(**config, **build_args)
    prefix = next(p for p in _prefixes(name) if any(k.startswith(p) for k in weights))
    net.load_state_dict({k.removeprefix(prefix): v for k, v in weights.items() if k.startswith(prefix)})
    return net.eval()


def _prefixes(name: str) -> tuple[str, ...]:
    """Where the network's weights sit in a task's state dict, the first found wins."""
    if name.endswith("_generator"):
        return ("ema.module.", "net.generator.")  # the averaged generator draws the task's samples
    if name.endswith("_discriminator"):
        return ("net.discriminator.",)
    return ("net.",)


__all__ = ["ENTRY", "load_network", "load_state", "network_entry", "read_entry", "require_entry"]
