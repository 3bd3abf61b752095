"""The callbacks every task runs by default: a divergence guard and reproducible epochs (each can be off)."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from tasks.data.reproducible import ResumableLoader, seed_batch, seed_epoch


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or gradient."""


class DivergenceGuard(Callback):
    """Stop a run at the first non-finite loss or gradient, naming the step, the last finite loss and the fix.

    Gradients are read in `on_before_optimizer_step`, where Lightning has already unscaled them under
    mixed precision. A GradScaler skips a step whose scaled gradients overflow, lowers its scale and goes
    on: such steps are not a divergence unless more than `skipped_steps` come in a row. Without a
    scaler, the first non-finite gradient stops the run. A non-finite loss always does.

    The checks run on the device and are read every `every_n_steps` steps (one host sync per read) and
    before every checkpoint, so a diverged run never saves its broken weights: the last good
    `last.ckpt` and best checkpoint stay as they were. The error names the step where it happened.

    Args:
        check_gradients: check the unscaled gradients before each optimiser step.
        hint: the task's own remedy, added to the message (e.g. "pre-norm (--model.net.placement=pre)").
        skipped_steps: overflowed steps in a row a GradScaler may skip before the run counts as diverged.
        every_n_steps: how often the device-side record is read; None: every step on a CPU, every 16 on
            an accelerator.
    """

    def __init__(
        self, check_gradients: bool = True, hint: str = "", skipped_steps: int = 8, every_n_steps: int | None = None
    ) -> None:
        self.check_gradients, self.hint, self.skipped_steps = check_gradients, hint, skipped_steps
        self.every_n_steps = every_n_steps
        self._streak: torch.Tensor | None = None  # non-finite gradient steps in a row
        self._failed_at: torch.Tensor | None = None  # (step, kind): kind 1 gradient, 2 loss; step -1: none
        self._last_finite: torch.Tensor | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        device = pl_module.device
        self._streak = torch.zeros((), dtype=torch.long, device=device)
        self._failed_at = torch.tensor([-1, 0], device=device)
        self._last_finite = torch.tensor(math.nan, device=device)
        if self.every_n_steps is None:
            self.every_n_steps = 1 if device.type == "cpu" else 16

    def _allowed(self, trainer: pl.Trainer) -> int:
        return self.skipped_steps if getattr(trainer.precision_plugin, "scaler", None) is not None else 0

    def _record(self, trainer: pl.Trainer, bad: torch.Tensor, kind: int) -> None:
        first = (self._failed_at[0] < 0) & bad
        here = torch.tensor([trainer.global_step, kind], device=bad.device)
        self._failed_at = torch.where(first, here, self._failed_at)

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        if not self.check_gradients or self._streak is None:
            return
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return
        finite = torch.stack([g.detach().float().norm() for g in grads]).isfinite().all()
        self._streak = (self._streak + 1) * (~finite)
        self._record(trainer, self._streak > self._allowed(trainer), kind=1)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, i: int) -> None:
        if self._streak is None:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        values = [loss] if isinstance(loss, torch.Tensor) else []
        if not values:  # manual optimisation returns nothing: read the logged training losses
            values = [v for k, v in trainer.callback_metrics.items() if k.startswith("train/") and "loss" in k]
        for value in values:
            value = value.detach().float().to(self._last_finite.device).reshape(())
            finite = value.isfinite()
            self._record(trainer, ~finite, kind=2)
            self._last_finite = torch.where(finite, value, self._last_finite)
        if (trainer.global_step % self.every_n_steps) == 0 or self.every_n_steps == 1:
            self.check(trainer)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: Any) -> None:
        self.check(trainer)  # raising here writes nothing: the broken weights never reach a file

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check(trainer)

    def check(self, trainer: pl.Trainer) -> None:
        """Read the device-side record (one sync) and raise `DivergenceError` if the run diverged."""
        if self._failed_at is None:
            return
        step, kind = self._failed_at.tolist()
        if step < 0:
            return
        last = self._last_finite.item()
        what = "non-finite gradient" if kind == 1 else "non-finite loss"
        if kind == 1 and self._allowed(trainer):
            what += f" in more than {self._allowed(trainer)} steps in a row (more than GradScaler skips)"
        fixes = "a lower learning rate, a warm-up, gradient clipping (--trainer.gradient_clip_val=1.0)"
        raise DivergenceError(
            f"{what} at step {step} (epoch {trainer.current_epoch}); last finite loss: "
            f"{'none yet' if math.isnan(last) else f'{last:.4g}'}. Likely fixes: {fixes}"
            f"{' or ' + self.hint if self.hint else ''}. Checkpoints of earlier steps are untouched; resume "
            "from one with --ckpt_path."
        )

    def on_validation_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, i: int, j: int = 0) -> None:
        check_finite_batch(batch, f"validation batch {i}")

    def on_test_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, i: int, j: int = 0) -> None:
        check_finite_batch(batch, f"test batch {i}")

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, i: int) -> None:
        check_finite_batch(batch, f"training batch {i} of epoch {trainer.current_epoch}")


def fit_or_diverged(trainer: pl.Trainer, model: pl.LightningModule, data: pl.LightningDataModule) -> int | None:
    """`trainer.fit`, for sweeps that report a divergence instead of stopping: the step it diverged at, or None."""
    try:
        trainer.fit(model, datamodule=data)
    except DivergenceError:
        return trainer.global_step
    return None


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
    """Seed the RNGs from (seed, epoch, rank) at each epoch and from (seed, epoch, batch, rank) at each step.

    With `EpochShuffle`, per-sample seeded transforms and `ResumableLoader` (see `tasks.data.reproducible`),
    a run resumed from any checkpoint, mid-epoch included, replays exactly what a straight run would have
    done. The checkpoint carries the epoch a resumed run starts in; it seeds that epoch at `on_fit_start`,
    because Lightning builds the first data iterator of a run (and forks its workers) before
    `on_train_epoch_start`.
    """

    def __init__(self) -> None:
        self.next_epoch = 0  # the epoch a run started from this state trains first
        self.batches_done = 0  # of that epoch, when the state was saved in its middle
        self._seeded: int | None = None
        self._trainer: pl.Trainer | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        trainer = self._trainer
        if trainer is not None and trainer.state.fn == "fit":
            done = trainer.fit_loop.epoch_loop.batch_progress.current.completed
            finished = done >= trainer.num_training_batches  # saved at the epoch's end: resume in the next one
            self.next_epoch = trainer.current_epoch + (1 if finished else 0)
            self.batches_done = 0 if finished else done
        return {"next_epoch": self.next_epoch, "batches_done": self.batches_done}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.next_epoch, self.batches_done = state_dict["next_epoch"], state_dict.get("batches_done", 0)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning restores a stateful loader only if the loader was not set up before the checkpoint was
        # read, and `estimated_stepping_batches` (every task's schedule) sets it up earlier: so tell the
        # loader here, before its first batch, where the killed run stopped.
        if self.batches_done:
            for loader in _leaves(trainer.train_dataloader):
                if isinstance(loader, ResumableLoader):
                    loader.load_state_dict({"epoch": self.next_epoch, "batches": self.batches_done})
            self.batches_done = 0

    def _seed(self, epoch: int, trainer: pl.Trainer) -> None:
        seed_epoch(epoch, trainer.global_rank)
        self._seeded = epoch

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._seed(self.next_epoch, trainer)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._seeded != trainer.current_epoch:
            self._seed(trainer.current_epoch, trainer)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        seed_batch(trainer.current_epoch, batch_idx, trainer.global_rank)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._seeded = None  # the next epoch seeds itself


def _leaves(loaders: Any) -> list[Any]:
    if isinstance(loaders, dict):
        return [leaf for v in loaders.values() for leaf in _leaves(v)]
    if isinstance(loaders, (list, tuple)):
        return [leaf for v in loaders for leaf in _leaves(v)]
    return [loaders]


__all__ = ["DivergenceError", "DivergenceGuard", "ReproducibleEpochs", "check_finite_batch", "fit_or_diverged"]
