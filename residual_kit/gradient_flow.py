"""See the gradient reach every block: ||dL/dx_l|| per block in depth order, with and without shortcuts.

With a shortcut, dL/dx_l = dL/dx_{l+1} (1 + df/dx_l): the identity term carries the gradient down.
Without it the product of Jacobians can fade with depth (He et al. 2015, Fig. 1). `GradientFlowRecorder`
measures this on any nn.Module (the tasks' `GradientFlowMonitor` does it every k steps of a Lightning run).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

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


__all__ = ["GradientFlowRecorder", "find_blocks"]
