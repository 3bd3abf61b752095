"""One arena run: a GPT or a recurrent language model of one design trained on next-byte prediction, scored on
every held-out byte."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterable
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from residual_kit.models.gpt import GPTConfig
from residual_kit.models.lstm import RecurrentLMConfig
from residual_kit.optim import param_groups
from tasks.core.callbacks import fit_or_diverged
from tasks.core.schedule import warmup_cosine
from tasks.core.trainer import lab_trainer
from tasks.data.char_text import CharTextDataModule
from tasks.lab.arena.designs import DESIGNS, Family
from tasks.lab.report import smooth
from tasks.lab.runner import StepLog

VAL, TEST = "validation bits/byte", "test bits/byte"
CURVE_WINDOWS = 48  # validation windows scored at each point of a run's validation curve


class CharLM(pl.LightningModule):
    """A language model (GPT or recurrent) trained on next-byte prediction with AdamW: linear warm-up, then cosine
    decay to 10% of `lr`; its parameter groups from `residual_kit.optim` (the one policy of every task).

    Args:
        net: the network.
        lr: peak learning rate.
        steps: the run's steps (the schedule's length).
        warmup: share of the steps spent warming up.
        weight_decay: AdamW's decoupled weight decay of the weight matrices (`residual_kit.optim`).
        scalar_lr: the learning rate of the scalars that multiply a stream (None: `lr`).
        compile: compile the training step's forward and backward with `torch.compile` (scoring stays eager).
    """

    def __init__(
        self,
        net: GPTConfig | RecurrentLMConfig,
        lr: float = 3e-3,
        steps: int = 1000,
        warmup: float = 0.1,
        weight_decay: float = 0.1,
        scalar_lr: float | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = net.build()
        self.train_loss = torch.compile(self.loss) if compile else self.loss

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self.net(x).flatten(0, 1), y.flatten(), ignore_index=-100)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.train_loss(batch)

    def configure_optimizers(self) -> dict[str, Any]:
        h = self.hparams
        opt = torch.optim.AdamW(param_groups(self, h.weight_decay, scalar_lr=h.scalar_lr), lr=h.lr, betas=(0.9, 0.95))
        sched = warmup_cosine(opt, max(1, round(h.warmup * h.steps)), h.steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


@torch.no_grad()
def bits_per_byte(model: CharLM, windows: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Bits per byte over the scored bytes of `windows` (batches of (x, y); -100 marks padding): the summed
    cross-entropy over the count of scored bytes, / ln 2."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for x, y in windows:
        x, y = x.to(model.device), y.to(model.device)
        logits = model.net(x).flatten(0, 1).float()
        total += F.cross_entropy(logits, y.flatten(), ignore_index=-100, reduction="sum").item()
        count += int((y >= 0).sum())
    model.train(was_training)
    return total / count / math.log(2)


class ValidationCurve(pl.Callback):
    """Validation bits per byte on a fixed part of the validation bytes at `points` evenly spaced steps (the last
    one the run's end), with the training seconds spent until then (the first step, which compiles, not counted):
    the curves the effective speed-up and the wall-clock figure read.

    Args:
        batches: the validation batches scored at each point.
        steps: the run's steps.
        points: how many points.
    """

    def __init__(self, batches: list[tuple[torch.Tensor, torch.Tensor]], steps: int, points: int = 10) -> None:
        self.batches, self.steps = batches, steps
        self.at = {round(steps * (i + 1) / points) for i in range(points)}
        self.curve: list[tuple[int, float, float]] = []  # (step, training seconds, bits per byte)
        self.seconds = 0.0

    def on_train_batch_start(self, *args: Any) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        if trainer.global_step > 1:
            self.seconds += time.perf_counter() - self._start
        if trainer.global_step in self.at:
            self.curve.append((trainer.global_step, self.seconds, bits_per_byte(pl_module, self.batches)))


def held_out_batches(data: CharTextDataModule, split: str, windows: int | None = None, batch: int = 64) -> list:
    """The `split` ("val" or "test") windows, the first `windows` of them, in batches."""
    dataset = data.val_set if split == "val" else data.test_set
    n = len(dataset) if windows is None else min(windows, len(dataset))
    items = [dataset[i] for i in range(n)]
    return [tuple(torch.stack(part) for part in zip(*items[i : i + batch], strict=True)) for i in range(0, n, batch)]


def net_config(
    design: str, depth: int, dim: int, heads: int, block_size: int, family: Family = "gpt", vocab_size: int = 256
) -> GPTConfig | RecurrentLMConfig:
    """The arena's network (bytes as tokens by default) of one design, depth and family: a GPT of `depth` layers
    (`heads` attention heads, `block_size` positions), or a recurrent language model of `depth` LSTM or GRU layers."""
    options = DESIGNS.get_builder(design).net_options(family)
    if family == "gpt":
        return GPTConfig(vocab_size=vocab_size, block_size=block_size, layers=depth, dim=dim, heads=heads, **options)
    return RecurrentLMConfig(vocab_size=vocab_size, layers=depth, dim=dim, **options)


def model_text(s: dict[str, Any]) -> str:
    """The network of a run's settings, in words."""
    if s.get("family", "gpt") == "gpt":
        return f"GPT width {s['dim']}, {s['heads']} heads, {s['depth']} layers"
    cell = s["family"].upper()
    return (
        f"{cell} language model: byte embedding, {s['depth']} {cell} layers of width {s['dim']}, each a residual "
        "block of the design, head tied to the embedding; each window read from a zero state"
    )


def seeded_run(s: dict[str, Any]) -> tuple[CharTextDataModule, CharLM]:
    """The data and the model of one run's settings, built from its seed."""
    pl.seed_everything(s["seed"], verbose=False)
    train_windows = s["batch_size"] * s["steps"]
    data = CharTextDataModule(s["text_file"], s["block_size"], s["batch_size"], train_windows, seed=s["seed"])
    net = net_config(s["design"], s["depth"], s["dim"], s["heads"], s["block_size"], s.get("family", "gpt"))
    return data, CharLM(net, s["lr"], s["steps"], s.get("warmup", 0.1), compile=s.get("compile", False))


def train_design(s: dict[str, Any]) -> dict[str, Any]:
    """Train one network of one design (settings: family, design, depth, seed, lr, steps, dim, heads, block_size,
    batch_size, warmup, target, text_file, precision) and score it on the validation bytes (what chooses its
    learning rate) and on the test bytes (what the report gives); its numbers, loss curve and validation curve."""
    data, model = seeded_run(s)
    data.setup("fit")
    log, curve = StepLog(), ValidationCurve(held_out_batches(data, "val", CURVE_WINDOWS), s["steps"])
    trainer = lab_trainer(
        None,
        [log, curve],
        max_epochs=1,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        gradient_clip_val=1.0,
        precision=s.get("precision"),
    )
    diverged = fit_or_diverged(trainer, model, data)
    if diverged is None:
        val, test = (bits_per_byte(model, held_out_batches(data, split)) for split in ("val", "test"))
    else:
        val = test = math.nan
    smoothed = smooth(log.losses, 20)
    reached = next((i + 1 for i, v in enumerate(smoothed) if v <= s["target"]), None)
    return {
        "family": s.get("family", "gpt"),
        "design": s["design"],
        "depth": s["depth"],
        "seed": s["seed"],
        "lr": s["lr"],
        VAL: val,
        TEST: test,
        "final train loss": sum(log.losses[-20:]) / max(1, len(log.losses[-20:])) if log.losses else math.nan,
        "steps to target": reached if reached is not None else math.nan,
        "diverged at": "no" if diverged is None else diverged,
        "params": sum(p.numel() for p in model.parameters()),
        "train seconds": sum(log.seconds),
        "step seconds": statistics.median(log.seconds) if log.seconds else math.nan,
        "_losses": log.losses,
        "_curve": curve.curve,
    }


__all__ = [
    "CURVE_WINDOWS",
    "TEST",
    "VAL",
    "CharLM",
    "ValidationCurve",
    "bits_per_byte",
    "held_out_batches",
    "model_text",
    "net_config",
    "seeded_run",
    "train_design",
]
