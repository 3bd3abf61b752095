"""The residual lab: what shortcuts change, measured and drawn.

python -m tasks.lab depth                                # plain vs residual ResNet-8/20/56 on digits
python -m tasks.lab depth --family lstm --depths '[2, 4, 8]'
python -m tasks.lab variants --depth 20 --seeds '[0, 1, 2]'
python -m tasks.lab depth --print_config > lab.yaml     # then: python -m tasks.lab depth --config lab.yaml

Each run trains twins on the same data, seed and budget, with `GradientFlowMonitor` attached and the
task's own trainer defaults (its gradient clipping, the divergence guard, reproducible epochs), and
writes `report.md` (tables and linked figures), `results.csv` and PNGs into `--out`. A run that
diverges is reported as diverged (with its step), and the sweep goes on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
from pytorch_lightning.loggers import CSVLogger

from tasks.core.callbacks import DivergenceGuard, ReproducibleEpochs, fit_or_diverged
from tasks.core.cli import TaskCLI, quiet_lightning, run
from tasks.core.gradient_flow import GradientFlowMonitor, plot_gradient_flow
from tasks.core.outputs import pyplot, save_figure, write_csv
from tasks.data.sources import Source
from tasks.lab.report import markdown_table, mean_std, plot_depth, public, run_once, write_report

Family = Literal["resnet", "lstm"]


@dataclass
class Spec:
    """How to build one family's twins: a LightningModule and data for (depth, residual, options)."""

    cli: Callable[[], type[TaskCLI]]  # the task whose trainer defaults the runs use
    blocks: str  # regex that finds the blocks of the residual and the plain twin alike
    depths: list[int]
    metric: str  # the test metric reported, e.g. "acc"
    build: Callable[..., tuple[pl.LightningModule, pl.LightningDataModule]]


def _resnet(depth: int, residual: bool, source: Source, options: dict[str, Any]) -> tuple[Any, Any]:
    from residual_kit.models import ResNetConfig
    from tasks.data import ImageDataModule
    from tasks.resnet import ImageClassifier

    net = ResNetConfig(f"resnet{depth}", residual=residual, **options.pop("net", {}))
    return ImageClassifier(net, **options), ImageDataModule("mnist", source)


def _lstm(depth: int, residual: bool, source: Source, options: dict[str, Any]) -> tuple[Any, Any]:
    from residual_kit.models import LSTMReaderConfig
    from tasks.data.digit_strips import DigitStripDataModule
    from tasks.lstm import StripReader

    data = DigitStripDataModule(source, num_train=options.pop("num_train", 8_000), num_val=500, num_test=1_000)
    net = LSTMReaderConfig(layers=depth, residual=residual, **options.pop("net", {}))
    return StripReader(net, **options), data


def _resnet_cli() -> type[TaskCLI]:
    from tasks.resnet import ResNetCLI

    return ResNetCLI


def _lstm_cli() -> type[TaskCLI]:
    from tasks.lstm import LSTMCLI

    return LSTMCLI


FAMILIES: dict[str, Spec] = {
    "resnet": Spec(_resnet_cli, r"(^|\.)stages\.\d+\.\d+$", [8, 20, 56], "acc", _resnet),
    "lstm": Spec(_lstm_cli, r"(^|\.)lstm\.layers\.\d+$", [2, 4, 8], "exact", _lstm),
}


class LossHistory(pl.Callback):
    """The training loss of every step (the paper's Fig. 6 curves)."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, i: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss))


def train_one(
    family: str, depth: int, residual: bool, seed: int, epochs: int, out: Path, source: Source,
    options: dict[str, Any], record_every: int, limit_batches: float | int, resume: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Train and test one twin; returns its numbers and keeps its loss curve and gradient records.

    The result is kept in `<out>/runs/<name>/result.json` with the settings that made it; with `resume`,
    a run whose settings match is read back instead of trained again, so a killed sweep picks up where
    it stopped.
    """
    name = f"{'residual' if residual else 'plain'}{depth}-seed{seed}"
    settings = dict(family=family, depth=depth, residual=residual, seed=seed, epochs=epochs, source=source,
                    options=options, record_every=record_every, limit_batches=limit_batches)  # fmt: skip
    return run_once(
        out / "runs" / name / "result.json",
        settings,
        lambda: _train_one(
            name, family, depth, residual, seed, epochs, out, source, options, record_every, limit_batches
        ),
        resume,
    )


def _train_one(
    name: str, family: str, depth: int, residual: bool, seed: int, epochs: int, out: Path, source: Source,
    options: dict[str, Any], record_every: int, limit_batches: float | int,
) -> dict[str, Any]:  # fmt: skip
    spec = FAMILIES[family]
    pl.seed_everything(seed, workers=True)
    model, data = spec.build(depth, residual, source, dict(options))
    monitor = GradientFlowMonitor(record_every, blocks=spec.blocks, dirpath=str(out / "runs" / name))
    history = LossHistory()
    task = spec.cli()
    trainer = pl.Trainer(
        **{"accelerator": "auto", **task.trainer_overrides},
        devices=1, max_epochs=epochs, logger=CSVLogger(out / "runs", name=name, version=""),
        callbacks=[monitor, history, DivergenceGuard(hint=task.divergence_hint), ReproducibleEpochs()],
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_train_batches=limit_batches, limit_val_batches=0,
    )  # fmt: skip
    diverged = fit_or_diverged(trainer, model, data)
    if diverged is not None:
        print(f"{name}: diverged at step {diverged}; reported as such")
    train_metric = trainer.callback_metrics.get(f"train/{spec.metric}")  # read before test resets them
    test = {} if diverged is not None else trainer.test(model, datamodule=data, verbose=False)[0]
    tail = history.losses[-max(1, len(history.losses) // 10) :]
    first = [r["input_grad"][0] for r in monitor.history]
    return {
        "family": family,
        "depth": depth,
        "net": "residual" if residual else "plain",
        "seed": seed,
        "final train loss": sum(tail) / len(tail),
        f"train {spec.metric}": float(train_metric) if train_metric is not None else math.nan,
        f"test {spec.metric}": test.get(f"test/{spec.metric}", math.nan),
        "diverged at step": "no" if diverged is None else diverged,
        "first-block grad at init": first[0] if first else math.nan,
        "first-block grad (mean)": mean_std(first)[0],
        "_losses": history.losses,
        "_gradflow": monitor.history,
        "_blocks": monitor.recorder.names if monitor.recorder else [],
    }


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")  # a folder name: "pre-norm (v2)" -> "pre_norm_v2"


def depth(
    family: Family = "resnet",
    depths: list[int] | None = None,
    epochs: int = 4,
    seeds: list[int] | None = None,
    out: str = "runs/lab/depth",
    source: Source = "auto",
    record_every: int = 10,
    limit_batches: float = 1.0,
    lr: float | None = None,
    resume: bool = True,
) -> Path:
    """Plain against residual twins at several depths, same data, seeds and budget (He et al. 2015, Fig. 6).

    Args:
        family: "resnet" (CIFAR-style ResNet-6n+2 on MNIST digits) or "lstm" (stacked LSTMs reading digit strips).
        depths: depths to train; default 8, 20, 56 (resnet) or 2, 4, 8 (lstm).
        epochs: training epochs of every run (the shared budget).
        seeds: one run per seed for each twin.
        out: folder for report.md, results.csv and the PNGs.
        source: where the digits come from ("auto": a local folder, a download, or the embedded 5k subset).
        record_every: steps between gradient-flow records.
        limit_batches: share (or number) of training batches per epoch, to shrink the budget.
        lr: peak learning rate; default: the task's own.
        resume: reuse runs of the same settings already finished in `out` (a killed sweep goes on).
    """
    spec = FAMILIES[family]
    depths, seeds, folder = depths or spec.depths, seeds or [0], Path(out)
    options = {"lr": lr} if lr is not None else {}
    rows = [
        train_one(family, d, residual, s, epochs, folder, source, options, record_every, limit_batches, resume)
        for d in depths
        for residual in (False, True)
        for s in seeds
    ]
    table = public(rows)
    write_csv(folder / "results.csv", list(table[0]), [list(r.values()) for r in table])
    figs = plot_depth(rows, spec.metric, folder)
    intro = (
        f"{family}: plain and residual twins at depths {depths}, {epochs} epochs each, seeds {seeds}, "
        f"the same data and schedule. Gradient norms are ‖dL/dx‖ at the input of the first block."
    )
    tables = [("Results", markdown_table(table))]
    path = write_report(folder, f"Depth: plain against residual ({family})", intro, tables, figs)
    print(markdown_table(table))
    print(f"report: {path}")
    return path


VARIANTS: dict[str, dict[str, Any]] = {
    "baseline: post-norm (v1), option A (pad) shortcut": {},
    "option B (projection) shortcut": {"net": {"shortcut": "projection"}},
    "pre-norm (v2)": {"net": {"placement": "pre"}},
    "post-norm (BN after the addition)": {"net": {"placement": "post"}},
    "DeepNorm (BN after alpha x + F(x))": {"net": {"placement": "deepnorm"}},
    "learnable scale": {"net": {"scale": "learnable"}},
    "ReZero": {"net": {"scale": "rezero"}},
    "LayerScale": {"net": {"scale": "layerscale"}},
    "drop path 0.1": {"net": {"drop_path": 0.1}},
    "gated merge": {"net": {"merge": "gate"}},
    "concat-fuse merge": {"net": {"merge": "concat"}},
}


def variants(
    depth: int = 20,
    names: list[str] | None = None,
    epochs: int = 3,
    seeds: list[int] | None = None,
    out: str = "runs/lab/variants",
    source: Source = "auto",
    record_every: int = 25,
    limit_batches: float = 1.0,
    resume: bool = True,
) -> Path:
    """Residual options side by side on one ResNet depth: same seeds, same budget; mean and spread over seeds.

    Args:
        depth: CIFAR-style ResNet depth (6n+2).
        names: variants to run (keys of `tasks.lab.VARIANTS`); default all.
        epochs: training epochs of every run.
        seeds: seeds per variant (at least 3 for a spread).
        out: folder for report.md, results.csv and the PNGs.
        source: where the digits come from.
        record_every: steps between gradient-flow records.
        limit_batches: share (or number) of training batches per epoch.
        resume: reuse runs of the same settings already finished in `out` (a killed sweep goes on).
    """
    names, seeds, folder = names or list(VARIANTS), seeds or [0, 1, 2], Path(out)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    runs: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        runs[name] = [
            train_one(
                "resnet",
                depth,
                True,
                s,
                epochs,
                folder / _slug(name),
                source,
                VARIANTS[name],
                record_every,
                limit_batches,
                resume,
            )
            for s in seeds
        ]
    summary = []
    for name, rs in runs.items():
        row: dict[str, Any] = {"variant": name, "seeds": len(rs)}
        for key in ("final train loss", "test acc", "first-block grad (mean)"):
            mean, std = mean_std([r[key] for r in rs])
            row[key] = f"{mean:.4g} ± {std:.2g}"
        summary.append(row)
    flat = [{"variant": n, **r} for n, rs in runs.items() for r in public(rs)]
    write_csv(folder / "results.csv", list(flat[0]), [list(r.values()) for r in flat])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(names) + 1.5))
    for i, rs in enumerate(runs.values()):
        accs = [r["test acc"] for r in rs]
        mean, std = mean_std(accs)
        ax.scatter(accs, [i] * len(accs), color="tab:blue", alpha=0.6)
        ax.errorbar(mean, i, xerr=std, fmt="o", color="k", capsize=3)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("test accuracy (dots: seeds; black: mean ± std)")
    figs = {"variants": save_figure(fig, folder / "variants.png")}
    first = next(iter(runs.values()))[0]
    figs["flow"] = save_figure(
        plot_gradient_flow(first["_gradflow"], first["_blocks"], f"{names[0]}, seed {seeds[0]}"),
        folder / "gradient_flow_first_variant.png",
    )
    intro = f"ResNet-{depth} on digits, {epochs} epochs, seeds {seeds}: one Residual option changed at a time."
    tables = [("Results", markdown_table(summary))]
    path = write_report(folder, f"Residual variants (ResNet-{depth})", intro, tables, figs)
    print(markdown_table(summary))
    print(f"report: {path}")
    return path


def cli_main(args: list[str] | None = None) -> Any:
    from jsonargparse import CLI

    quiet_lightning()
    from tasks.lab.arena import arena

    return CLI([depth, variants, arena], args=args)


if __name__ == "__main__":
    run(cli_main)
