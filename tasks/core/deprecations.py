"""The one table of option names that stopped working, per task, with what to write instead and the version.

A command line or a `--config` file that uses one stops with one line that names the replacement.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

RENAMED: dict[str, dict[str, tuple[str, str]]] = {
    # task: {option as written after "--": (what to write instead, the version in which the old name stopped)}
    "resnet": {
        **{
            f"model.{k}": (f"--model.net.{k}", "0.2.0")
            for k in ("arch", "scale", "drop_path", "merge", "num_classes", "in_channels")
        },
        "model.width": ("--model.net.width_multiplier", "0.2.0"),
        "model.zero_init_last": ("--model.net.init=zero_last", "0.2.0"),
        "model.shortcut": ("--model.net.shortcut=pad (was A) or projection (was B)", "0.2.0"),
        "model.preact": ("--model.net.placement=pre", "0.2.0"),
        "model.plain": ("--model.net.residual=false", "0.2.0"),
        "model.net.width": ("--model.net.width_multiplier", "0.3.0"),
        "model.net.zero_init_last": ("--model.net.init=zero_last", "0.3.0"),
    },
    "transformer": {
        **{
            f"model.{k}": (f"--model.net.{k}", "0.2.0")
            for k in ("vocab_size", "block_size", "layers", "dim", "heads", "mlp_ratio", "dropout", "drop_path")
        },
        "model.placement": (
            "--model.net.placement (placement=rezero is --model.net.placement=null --model.net.scale=rezero)",
            "0.2.0",
        ),
        "model.net.streams": ("--model.net.stack_options='{streams: N}'", "0.3.0"),
    },
    "lstm": {
        **{
            f"model.{k}": (f"--model.net.{k}", "0.2.0")
            for k in ("layers", "residual", "residual_from", "placement", "bidirectional", "conv_frontend", "dropout")
        },
        "model.hidden_size": ("--model.net.dim", "0.2.0"),
        "model.net.hidden_size": ("--model.net.dim", "0.3.0"),
        "model.net.streams": ("--model.net.stack_options='{streams: N}'", "0.3.0"),
    },
    "gan": {
        **{f"model.{k}": (f"--model.net.{k}", "0.2.0") for k in ("arch", "z_dim")},
        "model.num_classes": ("--model.condition=Classes (or null for none)", "0.2.0"),
        "model.width": ("--model.net.dim", "0.2.0"),
        **{f"model.{k}": (f"--evaluation.{k}", "0.2.0") for k in ("classifier_path", "confidence")},
        "model.eval_samples": ("--evaluation.samples", "0.2.0"),
        "model.net.channels": ("--model.net.dim", "0.3.0"),
        "model.net.d_channels": ("--model.net.d_dim", "0.3.0"),
        "model.net.num_classes": ("--model.condition=Classes (or --model.condition=null for none)", "0.3.0"),
        "model.net.codes": ("--model.condition=Codes --model.condition.codes=N", "0.3.0"),
        "model.net.clusters": ("--model.condition=Clusters --model.condition.clusters=N", "0.3.0"),
        "model.aux_weight": ("--model.condition.loss", "0.3.0"),
        "model.mode_seeking": ("--model.g_losses (a ModeSeeking entry, see configs/gan_unconditional.yaml)", "0.3.0"),
        "model.variety_floor": ("--model.g_losses (a VarietyFloor entry)", "0.3.0"),
        "model.truncation": ("--model.sampling.truncation", "0.3.0"),
        "model.best_of": ("--model.sampling.best_of", "0.3.0"),
    },
}


def check_renamed(task: str, keys: list[str], where: str = "") -> None:
    """Refuse, in one line, the first option of `keys` (dotted, as after "--") that `task` renamed."""
    table = RENAMED.get(task, {})
    for key in keys:
        if key in table:
            new, version = table[key]
            raise ValueError(f"{where}--{key} stopped working in residual-kit {version}: use {new}")


def dotted_keys(config: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """Every key of a nested config as a dotted path ("model.net.width"), leaves and sections alike."""
    for key, value in config.items():
        path = f"{prefix}{key}"
        yield path
        if isinstance(value, dict):
            yield from dotted_keys(value, f"{path}.")


__all__ = ["RENAMED", "check_renamed", "dotted_keys"]
