"""`LearningCurves`: every `fit` draws its learning curves (losses and the task's metric against step) as a PNG."""

from __future__ import annotations

import math
import time
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from tasks.core.outputs import pyplot, run_dir, save_figure


class LearningCurves(Callback):
    """Keep every logged training loss and validation metric with its step, and draw them into
    `<run folder>/curves.png` at the end of `fit`, and after a validation when `every_s` seconds have passed since
    the last drawing (a long run shows its progress; a short one pays for one drawing): the losses on one panel
    (log scale), the task's `metric` (the checkpoint's monitor) on the other.

    Args:
        metric: the validation metric drawn beside the losses, e.g. "val/acc".
        filename: the PNG's name in the run folder.
        every_s: the least time between two drawings during training.
    """

    def __init__(self, metric: str, filename: str = "curves.png", every_s: float = 120.0) -> None:
        self.metric, self.filename, self.every_s = metric, filename, every_s
        self.points: dict[str, list[tuple[int, torch.Tensor]]] = {}
        self._drawn = time.monotonic()

    def _keep(self, trainer: pl.Trainer, keys: Any) -> None:
        # kept as tensors: reading a GPU scalar every step would wait for the device; `draw` reads them at once
        for key in keys:
            value = trainer.callback_metrics.get(key)
            if value is not None and value.numel() == 1:
                self.points.setdefault(key, []).append((trainer.global_step, value.detach().reshape(()).clone()))

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self._keep(trainer, [k for k in trainer.callback_metrics if k.startswith("train/") and "loss" in k])

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._keep(trainer, [k for k in trainer.callback_metrics if k.startswith("val/")])
        if time.monotonic() - self._drawn > self.every_s:
            self.draw(trainer)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.draw(trainer)

    def draw(self, trainer: pl.Trainer) -> None:
        self._drawn = time.monotonic()
        if not trainer.is_global_zero or not self.points:
            return
        plt = pyplot()
        fig, (losses, metric) = plt.subplots(1, 2, figsize=(12, 4))
        for key, points in sorted(self.points.items()):
            steps, values = finite(points)
            if not steps:
                continue
            if "loss" in key:
                losses.plot(steps, values, label=key, marker="" if key.startswith("train/") else "o")
            elif key == self.metric:
                metric.plot(steps, values, marker="o", label=key)
        losses.set(title="losses", xlabel="step", yscale="log")
        metric.set(title=self.metric, xlabel="step")
        for ax in (losses, metric):
            if ax.lines:
                ax.legend(fontsize=8)
        save_figure(fig, run_dir(trainer) / self.filename)


def finite(points: list[tuple[int, Any]]) -> tuple[list[int], list[float]]:
    """The steps and values (as floats, read in one transfer) of the points whose value is finite."""
    values = torch.stack([value.float() for _, value in points]).tolist()
    kept = [(step, v) for (step, _), v in zip(points, values, strict=True) if math.isfinite(v)]
    return [step for step, _ in kept], [v for _, v in kept]


__all__ = ["LearningCurves"]
