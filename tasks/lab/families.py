"""The twins the lab trains: a family's residual network and its plain twin, on the family's task and data."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.loggers import CSVLogger

from tasks.core.callbacks import fit_or_diverged
from tasks.core.gradient_flow import GradientFlowMonitor
from tasks.core.trainer import lab_trainer
from tasks.lab.report import mean_std
from tasks.lab.runner import StepLog


@dataclass(frozen=True)
class Family:
    """How to build one family's twins: its task (for the trainer defaults), the blocks' names, its depths, the
    test metric reported, and a builder of (LightningModule, LightningDataModule) for a run's settings."""

    cli: Callable[[], type]
    blocks: str  # regex that finds the blocks of the residual and the plain twin alike
    depths: list[int]
    metric: str
    build: Callable[[dict[str, Any]], tuple[pl.LightningModule, pl.LightningDataModule]]


def _resnet(s: dict[str, Any]) -> tuple[Any, Any]:
    from residual_kit.models import ResNetConfig
    from tasks.data import ImageDataModule
    from tasks.resnet import ImageClassifier

    options = dict(s["options"])
    net = ResNetConfig(f"resnet{s['depth']}", residual=s["residual"], **options.pop("net", {}))
    return ImageClassifier(net, **options), ImageDataModule("mnist", s["source"])


def _lstm(s: dict[str, Any]) -> tuple[Any, Any]:
    from residual_kit.models import LSTMReaderConfig
    from tasks.data.digit_strips import DigitStripDataModule
    from tasks.lstm import StripReader

    options = dict(s["options"])
    data = DigitStripDataModule(s["source"], num_train=options.pop("num_train", 8_000), num_val=500, num_test=1_000)
    net = LSTMReaderConfig(layers=s["depth"], residual=s["residual"], **options.pop("net", {}))
    return StripReader(net, **options), data


def _resnet_cli() -> type:
    from tasks.resnet import ResNetCLI

    return ResNetCLI


def _lstm_cli() -> type:
    from tasks.lstm import LSTMCLI

    return LSTMCLI


FAMILIES: dict[str, Family] = {
    "resnet": Family(_resnet_cli, r"(^|\.)stages\.\d+\.\d+$", [8, 20, 56], "acc", _resnet),
    "lstm": Family(_lstm_cli, r"(^|\.)net\.lstm\.(layers|stack)\.\d+$", [2, 4, 8], "exact", _lstm),
}


def twin_name(s: dict[str, Any]) -> str:
    return f"{'residual' if s['residual'] else 'plain'}{s['depth']}-seed{s['seed']}"


def train_twin(s: dict[str, Any]) -> dict[str, Any]:
    """Train and test one twin (settings: family, depth, residual, seed, epochs, source, options, record_every,
    limit_batches, out); its numbers, loss curve and gradient records."""
    family, name = FAMILIES[s["family"]], twin_name(s)
    pl.seed_everything(s["seed"], workers=True)
    model, data = family.build(s)
    folder = Path(s["out"]) / "runs"
    monitor = GradientFlowMonitor(s["record_every"], blocks=family.blocks, dirpath=str(folder / name))
    log = StepLog()
    trainer = lab_trainer(
        family.cli(),
        [monitor, log],
        max_epochs=s["epochs"],
        logger=CSVLogger(folder, name=name, version=""),
        limit_train_batches=s["limit_batches"],
        limit_val_batches=0,
    )
    diverged = fit_or_diverged(trainer, model, data)
    if diverged is not None:
        print(f"{name}: diverged at step {diverged}; reported as such")
    train_metric = trainer.callback_metrics.get(f"train/{family.metric}")  # read before test resets them
    test = {} if diverged is not None else trainer.test(model, datamodule=data, verbose=False)[0]
    tail = log.losses[-max(1, len(log.losses) // 10) :]
    first = [r["input_grad"][0] for r in monitor.history]
    return {
        "family": s["family"],
        "depth": s["depth"],
        "net": "residual" if s["residual"] else "plain",
        "seed": s["seed"],
        "final train loss": sum(tail) / len(tail),
        f"train {family.metric}": float(train_metric) if train_metric is not None else math.nan,
        f"test {family.metric}": test.get(f"test/{family.metric}", math.nan),
        "diverged at step": "no" if diverged is None else diverged,
        "first-block grad at init": first[0] if first else math.nan,
        "first-block grad (mean)": mean_std(first)[0],
        "_losses": log.losses,
        "_gradflow": monitor.history,
        "_blocks": monitor.recorder.names if monitor.recorder else [],
    }


__all__ = ["FAMILIES", "Family", "train_twin", "twin_name"]
