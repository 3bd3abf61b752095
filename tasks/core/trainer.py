"""The Trainer settings every run shares, on the command line (`TaskCLI`) and in the lab's own runs."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from tasks.core.callbacks import DivergenceGuard, ReproducibleEpochs


def guard_callbacks(hint: str = "", divergence_guard: bool = True, reproducible_epochs: bool = True) -> list[Callback]:
    """The callbacks every task runs unless switched off: the divergence guard and reproducible epochs."""
    return [DivergenceGuard(hint=hint)] * divergence_guard + [ReproducibleEpochs()] * reproducible_epochs


def lab_trainer(task: Any = None, callbacks: list[Callback] | tuple = (), **overrides: Any) -> pl.Trainer:
    """A Trainer for a run the lab makes in code: the task's own trainer defaults and guards (`task`, a `TaskCLI`
    subclass, or None), one device, no checkpoints, progress bar or summary; `overrides` win."""
    defaults = dict(getattr(task, "trainer_overrides", {}))
    guards = guard_callbacks(getattr(task, "divergence_hint", ""))
    options = {
        "accelerator": "auto",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        **defaults,
        **overrides,
    }
    return pl.Trainer(**options, callbacks=[*callbacks, *guards])


__all__ = ["guard_callbacks", "lab_trainer"]
