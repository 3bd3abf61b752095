"""Checkpoints: `last.ckpt` at every validation, finding it again, and refusing the wrong file in one line."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins.io import TorchCheckpointIO

from residual_kit.models.checkpoint import load_state, require_entry
from tasks.core.outputs import PARTIAL, atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file beside their path, then renamed over it.

    A run killed while it writes `last.ckpt` leaves the previous `last.ckpt` whole (Lightning's own writer
    stages the file in the system's temp folder and moves it, which is a copy, not a rename, when that
    folder is on another disk). Remote paths (`s3://...`) go through Lightning's writer.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        with atomic_write(path) as tmp:
            torch.save(checkpoint, tmp)


def last_checkpoint(dirpath: str | Path | None = None) -> ModelCheckpoint:
    """`last.ckpt`, rewritten at every validation (or epoch end): what `fit --ckpt_path last` resumes.

    Its own callback because since Lightning 2.6 `save_last=True` rewrites last.ckpt only when a top-k
    checkpoint is saved in the same step, so a run whose metric stopped improving would resume epochs back.
    """
    return ModelCheckpoint(dirpath=dirpath, filename="last", monitor=None, save_top_k=1, enable_version_counter=False)


def find_last_checkpoint(*folders: str | Path) -> Path:
    """The newest `last*.ckpt` in the given folders or their `version_*/checkpoints` subfolders."""
    found: list[Path] = []
    for folder in map(Path, folders):
        found += [*folder.glob("last*.ckpt"), *folder.glob("version_*/checkpoints/last*.ckpt")]
        for partial in [*folder.glob(f".*{PARTIAL}"), *folder.glob(f"version_*/checkpoints/.*{PARTIAL}")]:
            partial.unlink(missing_ok=True)  # a checkpoint half-written by a killed run: never trusted
    if not found:
        where = " or ".join(str(Path(f) / "version_*" / "checkpoints") for f in folders)
        raise FileNotFoundError(
            f"--ckpt_path last: no last.ckpt under {where}. Train first with `fit`, pass the same "
            "--trainer.default_root_dir as that run, or pass the path of a .ckpt file."
        )
    return max(found, key=lambda p: p.stat().st_mtime)


def check_checkpoint(path: str | Path, model: torch.nn.Module, task: str) -> None:
    """Refuse a checkpoint that is missing, unreadable, or written for another model, before anything runs."""
    state = load_state(path, weights_only=False)
    if "state_dict" not in state:
        raise ValueError(f"{path} is not a Lightning checkpoint (no state_dict): pass a .ckpt that `fit` wrote")
    theirs, ours = state["state_dict"], model.state_dict()
    missing = [k for k in ours if k not in theirs]
    if len(missing) == len(ours) or len([k for k in theirs if k not in ours]) == len(theirs):
        raise ValueError(
            f"{path} is not a checkpoint of {type(model).__name__} (tasks.{task}): none of its weights match "
            f"(e.g. it has {next(iter(theirs), 'nothing')!r}). Pass a checkpoint written by "
            f"`python -m tasks.{task} fit`."
        )
    for key, value in ours.items():
        if key in theirs and theirs[key].shape != value.shape:
            raise ValueError(
                f"{path} was trained with other model options: {key} is {tuple(theirs[key].shape)} there and "
                f"{tuple(value.shape)} here. Pass the config it was trained with (the config.yaml in its run "
                "folder: --config <run>/config.yaml)."
            )
    if missing:
        raise ValueError(
            f"{path} lacks {len(missing)} weights of {type(model).__name__} (e.g. {missing[0]!r}): it was trained "
            "with other model options; pass the config.yaml of its run with --config."
        )


def check_hyperparameters(path: str | Path, model_class: type, task: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Refuse a checkpoint that cannot be read, of an earlier version, or whose hyperparameters `model_class` does
    not take; return them and its data module's (Lightning's private `_*` entries left out)."""
    state = load_state(path)
    require_entry(state, path, f"`python -m tasks.{task} fit`")
    hparams = state.get("hyper_parameters", {})
    ours = {k: v for k, v in hparams.items() if not k.startswith("_")}
    data = {k: v for k, v in state.get("datamodule_hyper_parameters", {}).items() if not k.startswith("_")}
    if "_class_path" in hparams:  # subclass mode: the parser checks the class itself
        return ours, data
    accepted = set(inspect.signature(model_class).parameters)
    foreign = sorted(k for k in ours if k not in accepted)
    if foreign:
        raise ValueError(
            f"{path} is not a checkpoint of {model_class.__name__} (tasks.{task}): it was saved with "
            f"{', '.join(foreign[:4])}, which {model_class.__name__} does not take. Pass a checkpoint written by "
            f"`python -m tasks.{task} fit`."
        )
    return ours, data


__all__ = ["AtomicCheckpointIO", "check_checkpoint", "check_hyperparameters", "find_last_checkpoint", "last_checkpoint"]
