"""The callbacks every task runs by default: a divergence guard and reproducible epochs (each can be off)."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from tasks.data.reproducible import seed_epoch


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or gradient."""


class DivergenceGuard(Callback):
    """Stop a run at the first non-finite loss or gradient, naming the step, the last finite loss and the fix.

    It raises instead of setting `should_stop`, so no checkpoint of the broken weights is written: the
    last good `last.ckpt` (and the best one) stay as they were.

    Args:
        check_gradients: also check the gradient norm after each backward (one reduction per step).
        hint: the task's own remedies, added to the message (e.g. "pre-norm (--model.net.placement=pre)").
    """

    def __init__(self, check_gradients: bool = True, hint: str = "") -> None:
        self.check_gradients, self.hint = check_gradients, hint
        self.last_finite: float | None = None

    def _fail(self, trainer: pl.Trainer, what: str) -> None:
        last = f"{self.last_finite:.4g}" if self.last_finite is not None else "none yet"
        fixes = "a lower learning rate, a warm-up, gradient clipping (--trainer.gradient_clip_val=1.0)"
        raise DivergenceError(
            f"{what} at step {trainer.global_step} (epoch {trainer.current_epoch}); last finite loss: {last}. "
            f"Likely fixes: {fixes}{' or ' + self.hint if self.hint else ''}. Checkpoints of earlier steps are "
            "untouched; resume from one with --ckpt_path."
        )

    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.check_gradients:
            return
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        if grads and not torch.isfinite(torch.stack([g.detach().float().norm() for g in grads]).sum()):
            self._fail(trainer, "non-finite gradient")

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, i: int) -> None:
        check_finite_batch(batch, f"training batch {i} of epoch {trainer.current_epoch}")

    def on_validation_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, i: int, j: int = 0) -> None:
        check_finite_batch(batch, f"validation batch {i}")

    def on_test_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, i: int, j: int = 0) -> None:
        check_finite_batch(batch, f"test batch {i}")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, i: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        values = [loss] if isinstance(loss, torch.Tensor) else []
        if not values:  # manual optimisation returns nothing: read the logged training losses
            values = [v for k, v in trainer.callback_metrics.items() if k.startswith("train/") and "loss" in k]
        for value in values:
            value = float(value)
            if not math.isfinite(value):
                self._fail(trainer, f"non-finite loss ({value})")
            self.last_finite = value


def check_finite_batch(batch: Any, where: str) -> None:
    """Refuse a batch with NaN or infinite inputs before it reaches the weights."""
    tensors = [batch] if isinstance(batch, torch.Tensor) else batch if isinstance(batch, (list, tuple)) else []
    for k, t in enumerate(tensors):
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not torch.isfinite(t).all():
            bad = int((~torch.isfinite(t)).sum())
            raise ValueError(
                f"{where} holds {bad} non-finite input values (tensor {k} of the batch, shape {tuple(t.shape)}): "
                "the data has NaN or inf in it. Check the data files (a corrupt file?) and any custom "
                "normalisation; nothing was trained on this batch."
            )


class ReproducibleEpochs(Callback):
    """Seed every RNG at the start of each epoch from (seed, epoch, rank) (see `tasks.data.reproducible`).

    A run resumed from an end-of-epoch checkpoint then replays exactly the epochs a straight run would:
    the same shuffle, augmentation, noise and dropout. The checkpoint carries which epoch comes next; a
    resumed run seeds at `on_fit_start`, because Lightning builds the first data iterator of a run (and
    forks its workers) before `on_train_epoch_start`.
    """

    def __init__(self) -> None:
        self.next_epoch = 0  # the epoch the next `on_train_epoch_start` begins
        self._seeded: int | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"next_epoch": self.next_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.next_epoch = state_dict["next_epoch"]

    def _seed(self, trainer: pl.Trainer) -> None:
        seed_epoch(self.next_epoch, trainer.global_rank)
        self._seeded = self.next_epoch

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._seed(trainer)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._seeded != self.next_epoch:
            self._seed(trainer)
        self.next_epoch += 1


__all__ = ["DivergenceError", "DivergenceGuard", "ReproducibleEpochs", "check_finite_batch"]
