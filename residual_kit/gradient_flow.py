"""See the gradient reach every block: ||dL/dx_l|| per block in depth order, with and without shortcuts.

With a shortcut, dL/dx_l = dL/dx_{l+1} (1 + df/dx_l): the identity term carries the gradient down.
Without it the product of Jacobians can fade with depth (He et al. 2015, Fig. 1). `GradientFlowRecorder`
measures this on any nn.Module; `GradientFlowMonitor` does it every k steps of a Lightning run, logs the
numbers and draws them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from .plotting import pyplot, save_figure
from .residual import Residual


def find_blocks(model: nn.Module, blocks: str | Sequence[str] = "auto") -> list[tuple[str, nn.Module]]:
    """The blocks to watch, in registration (= depth) order.

    `"auto"`: every outermost `Residual`. A regex: every module whose qualified name matches it
    (e.g. `r"stages\\.\\d+\\.\\d+$"`, which finds the blocks of a ResNet and of its plain twin alike).
    A list of names: exactly those modules.
    """
    named = list(model.named_modules())
    if isinstance(blocks, str) and blocks == "auto":
        found, inside = [], ()
        for name, module in named:
            if isinstance(module, Residual) and not (inside and name.startswith(inside)):
                found.append((name, module))
                inside = tuple(f"{n}." for n, _ in found)
        if not found:
            raise ValueError(
                f"{type(model).__name__} has no Residual blocks to watch: pass blocks=<regex over module names>, "
                r"e.g. blocks='stages\.\d+\.\d+$' (see model.named_modules())"
            )
        return found
    if isinstance(blocks, str):
        pattern = re.compile(blocks)
        found = [(n, m) for n, m in named if n and pattern.search(n)]
        if not found:
            raise ValueError(f"no module name of {type(model).__name__} matches blocks={blocks!r}")
        return found
    by_name = dict(named)
    missing = [n for n in blocks if n not in by_name]
    if missing:
        raise ValueError(f"{type(model).__name__} has no modules named {missing}")
    return [(n, by_name[n]) for n in blocks]


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    return None


class GradientFlowRecorder:
    """Hooks that, for one forward and backward, record per block: ||dL/dx_l||, ||dL/dθ_l|| and RMS(x_l).

    Use as a context manager around the forward pass; call `collect()` after `backward()`:

        with GradientFlowRecorder(model) as rec:
            loss = loss_fn(model(x), y)
        loss.backward()
        record = rec.collect()  # {"input_grad": [...], "param_grad": [...], "activation_rms": [...]}

    Every hook is removed on exit, so steps that are not recorded cost nothing.
    """

    def __init__(self, model: nn.Module, blocks: str | Sequence[str] = "auto") -> None:
        self.blocks = find_blocks(model, blocks)
        self.names = [n for n, _ in self.blocks]
        self._handles: list[Any] = []
        self._input_grad: dict[int, float] = {}
        self._rms: dict[int, float] = {}

    def __enter__(self) -> GradientFlowRecorder:
        self._input_grad, self._rms = {}, {}
        for i, (_, module) in enumerate(self.blocks):
            self._handles.append(module.register_forward_pre_hook(self._on_input(i), with_kwargs=True))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _on_input(self, i: int) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            x = _first_tensor(args)
            if x is None or i in self._rms:  # record the first call only (a block reused is one block)
                return
            with torch.no_grad():
                self._rms[i] = x.detach().float().pow(2).mean().sqrt().item()
            if x.requires_grad:
                x.register_hook(lambda g: self._input_grad.__setitem__(i, g.detach().float().norm().item()))

        return hook

    def collect(self) -> dict[str, list[float]]:
        """The numbers of the last recorded step, per block in depth order (NaN where none flowed)."""
        param_grad = []
        for _, module in self.blocks:
            grads = [p.grad.detach().float().pow(2).sum() for p in module.parameters() if p.grad is not None]
            param_grad.append(torch.stack(grads).sum().sqrt().item() if grads else math.nan)
        n = len(self.blocks)
        return {
            "input_grad": [self._input_grad.get(i, math.nan) for i in range(n)],
            "param_grad": param_grad,
            "activation_rms": [self._rms.get(i, math.nan) for i in range(n)],
        }


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


__all__ = ["GradientFlowMonitor", "GradientFlowRecorder", "find_blocks", "plot_gradient_flow"]
