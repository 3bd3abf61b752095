"""One arena run: a GPT of one design trained on next-byte prediction, scored on every held-out byte."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from residual_kit.models.gpt import GPTConfig
from tasks.core.callbacks import fit_or_diverged
from tasks.core.trainer import lab_trainer
from tasks.data.char_text import CharTextDataModule
from tasks.lab.arena.designs import DESIGNS
from tasks.lab.report import smooth
from tasks.lab.runner import StepLog


def decayed(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(weights that take weight decay, the rest): only the weights of Linear and Embedding layers decay; norms,
    biases, branch scales, gates and every design's connection weights (hyper-connections' mixing matrices,
    DenseFormer's averages, ...) do not, as the designs' authors advise (the mixing pulled to 0 is not neutral)."""
    decay = {id(m.weight): m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Embedding))}
    rest = [p for p in model.parameters() if id(p) not in decay]
    return list(decay.values()), rest


class CharLM(pl.LightningModule):
    """A GPT trained on next-byte prediction with AdamW: linear warm-up, then cosine decay to 10% of `lr`.

    Args:
        net: the GPT.
        lr: peak learning rate.
        steps: the run's steps (the schedule's length).
        warmup: share of the steps spent warming up.
        weight_decay: AdamW's decoupled weight decay of Linear and Embedding weights (see `decayed`).
    """

    def __init__(
        self, net: GPTConfig, lr: float = 3e-3, steps: int = 1000, warmup: float = 0.1, weight_decay: float = 0.1
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = net.build()

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self.net(x).flatten(0, 1), y.flatten(), ignore_index=-100)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.loss(batch)

    def configure_optimizers(self) -> dict[str, Any]:
        h = self.hparams
        decay, rest = decayed(self)
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": h.weight_decay}, {"params": rest, "weight_decay": 0.0}],
            lr=h.lr,
            betas=(0.9, 0.95),
        )
        warm = max(1, round(h.warmup * h.steps))

        def schedule(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, h.steps - warm))))

        return {
            "optimizer": opt,
            "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, schedule), "interval": "step"},
        }


@torch.no_grad()
def held_out_bits(model: CharLM, data: CharTextDataModule) -> float:
    """Bits per byte over every held-out byte: the summed cross-entropy over the count of scored bytes, / ln 2."""
    model.eval()
    total, count = 0.0, 0
    for x, y in data.val_dataloader():
        x, y = x.to(model.device), y.to(model.device)
        total += F.cross_entropy(
            model.net(x).flatten(0, 1).float(), y.flatten(), ignore_index=-100, reduction="sum"
        ).item()
        count += int((y >= 0).sum())
    return total / count / math.log(2)


def gpt_config(design: str, depth: int, dim: int, heads: int, block_size: int) -> GPTConfig:
    """The arena's GPT (bytes as tokens) of one design and depth."""
    return GPTConfig(
        vocab_size=256,
        block_size=block_size,
        layers=depth,
        dim=dim,
        heads=heads,
        **DESIGNS.get_builder(design).gpt_options(),
    )


def seeded_run(s: dict[str, Any]) -> tuple[CharTextDataModule, CharLM]:
    """The data and the model of one run's settings, built from its seed."""
    pl.seed_everything(s["seed"], verbose=False)
    train_windows = s["batch_size"] * s["steps"]
    data = CharTextDataModule(s["text_file"], s["block_size"], s["batch_size"], train_windows, seed=s["seed"])
    net = gpt_config(s["design"], s["depth"], s["dim"], s["heads"], s["block_size"])
    return data, CharLM(net, s["lr"], s["steps"], s.get("warmup", 0.1))


def train_design(s: dict[str, Any]) -> dict[str, Any]:
    """Train one GPT of one design (settings: design, depth, seed, lr, steps, dim, heads, block_size, batch_size,
    warmup, target, text_file, precision) and score it; its numbers and loss curve."""
    data, model = seeded_run(s)
    log = StepLog()
    trainer = lab_trainer(
        None,
        [log],
        max_epochs=1,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        gradient_clip_val=1.0,
        precision=s.get("precision"),
    )
    diverged = fit_or_diverged(trainer, model, data)
    data.setup("validate")
    bpb = math.nan if diverged is not None else held_out_bits(model, data)
    curve = smooth(log.losses, 20)
    reached = next((i + 1 for i, v in enumerate(curve) if v <= s["target"]), None)
    return {
        "design": s["design"],
        "depth": s["depth"],
        "seed": s["seed"],
        "lr": s["lr"],
        "held-out bits/byte": bpb,
        "final train loss": sum(log.losses[-20:]) / max(1, len(log.losses[-20:])) if log.losses else math.nan,
        "steps to target": reached if reached is not None else math.nan,
        "diverged at": "no" if diverged is None else diverged,
        "params": sum(p.numel() for p in model.parameters()),
        "_losses": log.losses,
    }


__all__ = ["CharLM", "decayed", "gpt_config", "held_out_bits", "seeded_run", "train_design"]
