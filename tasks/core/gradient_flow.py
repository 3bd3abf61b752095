"""`GradientFlowMonitor`: ||dL/dx_l||, ||dL/dθ_l|| and RMS(x_l) per block every k steps of a run, logged and drawn.

The measuring is `residual_kit.gradient_flow.GradientFlowRecorder`, plain PyTorch; this is its Lightning callback.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from residual_kit.gradient_flow import GradientFlowRecorder
from tasks.core.outputs import pyplot, save_figure


class GradientFlowMonitor(pl.Callback):
    """Every `every_n_steps` training steps, record gradient flow per block, log it, and plot it at the end.

    Logged as `gradflow/{input_grad,param_grad,activation_rms}/{index:02d}` (index in depth order).
    The PNG `gradient_flow.png` (in the logger's folder, or `dirpath`) shows each quantity against depth,
    one line per recorded step. `history` keeps every record for code that wants the numbers.

    Args:
        every_n_steps: record on global steps 0, k, 2k, ...
        blocks: "auto" (every outermost Residual), a regex over module names, or a list of names.
        dirpath: where to write the PNG; None: the logger's folder.
        filename: name of the PNG; None writes no picture.
    """

    def __init__(
        self,
        every_n_steps: int = 50,
        blocks: str | list[str] = "auto",
        dirpath: str | None = None,
        filename: str | None = "gradient_flow.png",
    ) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps={every_n_steps} must be at least 1")
        self.every_n_steps, self.blocks, self.dirpath, self.filename = every_n_steps, blocks, dirpath, filename
        self.recorder: GradientFlowRecorder | None = None
        self.history: list[dict[str, Any]] = []
        self._active = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.recorder = GradientFlowRecorder(pl_module, self.blocks)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, i: int) -> None:
        self._active = trainer.global_step % self.every_n_steps == 0 and self.recorder is not None
        if self._active:
            self.recorder.__enter__()

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        # Lightning has unscaled the parameter gradients here under mixed precision; the input gradients
        # were caught during backward, still multiplied by the GradScaler's scale, so divide it out
        if not self._active:
            return
        self.recorder.__exit__()
        self._active = False
        record = {"step": trainer.global_step, **self.recorder.collect()}
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        if scaler is not None:
            record["input_grad"] = [g / scaler.get_scale() for g in record["input_grad"]]
        self.history.append(record)
        if trainer.logger is not None and trainer.is_global_zero:
            metrics = {
                f"gradflow/{key}/{i:02d}": value
                for key in ("input_grad", "param_grad", "activation_rms")
                for i, value in enumerate(record[key])
                if math.isfinite(value)
            }
            trainer.logger.log_metrics(metrics, step=trainer.global_step)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self._active and self.recorder is not None:  # no backward ran (e.g. manual optimisation skipped)
            self.recorder.__exit__()
            self._active = False

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.filename is None or not self.history:
            return
        folder = Path(self.dirpath or trainer.log_dir or trainer.default_root_dir)  # a collective under DDP: every rank
        if not trainer.is_global_zero:
            return
        path = save_figure(plot_gradient_flow(self.history, self.recorder.names), folder / self.filename)
        pl_module.print(f"gradient flow per block: {path}")

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.recorder is not None:
            self.recorder.__exit__()


def plot_gradient_flow(history: list[dict[str, Any]], names: list[str], title: str = "") -> Any:
    """||dL/dx_l||, ||dL/dθ_l|| and RMS(x_l) against block index, one line per recorded step (dark = late)."""
    plt = pyplot()

    panels = [("input_grad", "‖dL/dx_l‖ (gradient reaching block l)"), ("param_grad", "‖dL/dθ_l‖"),
              ("activation_rms", "RMS(x_l)")]  # fmt: skip
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    cmap = plt.get_cmap("viridis")
    for ax, (key, label) in zip(axes, panels, strict=True):
        for j, record in enumerate(history):
            color = cmap(1 - j / max(1, len(history) - 1))
            ax.plot(range(len(names)), record[key], color=color, lw=1, label=f"step {record['step']}")
        ax.set_yscale("log")
        ax.set_xlabel("block (input side → output side)")
        ax.set_title(label)
    if len(history) <= 8:
        axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


__all__ = ["GradientFlowMonitor", "plot_gradient_flow"]
