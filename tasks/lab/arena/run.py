"""The arena: one GPT, one text, one budget, every residual design, several depths, several seeds.

python -m tasks.lab arena                                        # the CPU default: 4, 8, 16 layers, ~30 min
python -m tasks.lab arena --depths '[12, 24, 48]' --steps 1000 --dim 256   # a GPU-sized run
python -m tasks.lab arena --text_file my_corpus.txt

The task is byte-level language modelling of a real text (default: a fixed set of modules of Python's
standard library, which every machine has): depth and the residual design matter there from the first
hundred steps, unlike the digit tasks, which 4 layers solve. Per run: held-out bits per byte at the
fixed budget, the final training loss, steps to a target loss, parameters and time per step against
pre-norm; a learning-rate sweep at one depth says how far each design stays trainable; the
residual stream's RMS and the gradient norm at every layer's input show how each scales with depth.
Everything goes into `report.md` with tables (mean ± std over seeds) and PNGs.
"""

from __future__ import annotations

import logging
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from residual_kit.models.gpt import GPTConfig
from tasks.core.callbacks import DivergenceGuard, fit_or_diverged
from tasks.core.cli import quiet_lightning
from tasks.core.gradient_flow import GradientFlowMonitor
from tasks.data.char_text import CharTextDataModule
from tasks.lab.arena_report import baseline, cost, plot_arena, stability, summary
from tasks.lab.arena_timing import step_times
from tasks.lab.report import finished_run, markdown_table, save_run, smooth, write_report

DESIGNS: dict[str, dict[str, Any]] = {
    "post": {"placement": "post"},
    "pre": {"placement": "pre"},
    "sandwich": {"placement": "sandwich"},
    "deepnorm": {"placement": "deepnorm"},
    "rezero": {"placement": None, "scale": "rezero"},
    "layerscale": {"placement": "pre", "scale": "layerscale"},
    "hyper-connections": {"stack": "hyper"},
    "mHC": {"stack": "mhc"},
    "value residual": {"value_residual": 0.5},
    "denseformer": {"stack": "dense"},
    "fixup": {"placement": None, "scale": "learnable", "init": "fixup"},
}
BLOCKS = r"^net\.blocks\.\d+$|^net\.blocks\.layers\.\d+\.(attn|mlp)\.wrap$"  # each layer, or each branch, in order


class CharLM(pl.LightningModule):
    """A GPT trained on next-byte prediction with AdamW at a constant learning rate (after `warmup_steps`)."""

    def __init__(self, net: GPTConfig, lr: float = 3e-3, warmup_steps: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = net.build()

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self.net(x).flatten(0, 1), y.flatten())

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.log("val/bpb", self.loss(batch) / math.log(2))  # bits per byte

    def configure_optimizers(self) -> dict[str, Any]:
        h = self.hparams
        decay = [p for p in self.parameters() if p.dim() >= 2]
        rest = [p for p in self.parameters() if p.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                                lr=h.lr, betas=(0.9, 0.95))  # fmt: skip
        ramp = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, h.warmup_steps)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": ramp, "interval": "step"}}


class StepLog(pl.Callback):
    """The training loss and the wall time of every step."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.seconds: list[float] = []

    def on_train_batch_start(self, *args: Any) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, *args: Any) -> None:
        self.seconds.append(time.perf_counter() - self._start)
        self.losses.append(float(outputs["loss"]))


def gpt_config(design: str, depth: int, dim: int, heads: int) -> GPTConfig:
    """The arena's GPT (bytes as tokens, 64 of context) of one design and depth."""
    return GPTConfig(vocab_size=256, block_size=64, layers=depth, dim=dim, heads=heads, **DESIGNS[design])


def train_design(design: str, depth: int, seed: int, lr: float, steps: int, dim: int, heads: int,
                 target: float, text_file: str | None, batch_size: int = 32) -> dict[str, Any]:  # fmt: skip
    """Train one GPT of one design; its numbers, loss curve and per-layer records."""
    pl.seed_everything(seed, verbose=False)
    data = CharTextDataModule(text_file, batch_size=batch_size, num_train=batch_size * steps, seed=seed)
    model = CharLM(gpt_config(design, depth, dim, heads), lr)
    log = StepLog()
    flow = GradientFlowMonitor(max(1, steps - 1), blocks=BLOCKS, filename=None)
    trainer = pl.Trainer(
        accelerator="auto", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        gradient_clip_val=1.0, callbacks=[log, flow, DivergenceGuard()],
    )  # fmt: skip
    diverged = fit_or_diverged(trainer, model, data)
    trainer.limit_val_batches = 1.0
    bpb = math.nan if diverged is not None else trainer.validate(model, datamodule=data, verbose=False)[0]["val/bpb"]
    curve = smooth(log.losses, 10)
    reached = next((i + 1 for i, v in enumerate(curve) if v <= target), None)
    last = flow.history[-1] if flow.history else {"activation_rms": [], "input_grad": []}
    return {
        "design": design, "depth": depth, "seed": seed, "lr": lr,
        "held-out bits/byte": bpb,
        "final train loss": sum(log.losses[-10:]) / max(1, len(log.losses[-10:])) if log.losses else math.nan,
        "steps to target": reached if reached is not None else math.nan,
        "diverged at": "no" if diverged is None else diverged,
        "params": sum(p.numel() for p in model.parameters()),
        "ms/step": 1e3 * sorted(log.seconds)[len(log.seconds) // 2] if log.seconds else math.nan,
        "_losses": log.losses, "_rms": last["activation_rms"], "_grad": last["input_grad"],
    }  # fmt: skip


def unigram_bits(text_file: str | None) -> float:
    """The entropy of the training bytes' histogram: a model that learned nothing of order reaches this."""
    data = CharTextDataModule(text_file)
    data.setup("fit")
    counts = torch.bincount(data.train_set.data.long(), minlength=256).float()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log2()).sum())


def arena(
    designs: list[str] | None = None,
    depths: list[int] | None = None,
    seeds: list[int] | None = None,
    steps: int = 120,
    batch_size: int = 20,
    dim: int = 64,
    heads: int = 4,
    lr: float = 3e-3,
    sweep: list[float] | None = None,
    sweep_depth: int = 8,
    target: float = 2.5,
    text_file: str | None = None,
    out: str = "runs/lab/arena",
    resume: bool = True,
    workers: int | None = None,
) -> Path:
    """Every residual design on the same GPT, text, budget and seeds, at several depths (see the module doc).

    Args:
        designs: names from `tasks.arena.DESIGNS`; default all.
        depths: GPT layers (each an attention and an MLP sub-layer).
        seeds: seeds per design and depth.
        steps: training steps per run.
        batch_size: windows of 64 bytes per step; at 20 the default command took 21 min 30 s on a 2-core
            CPU, two runs at a time (30 min 19 s on the slowest one measured).
        dim: width; heads: attention heads.
        lr: AdamW learning rate of the main runs (constant, no warm-up: the designs' own stability shows).
        sweep: learning rates of the stability sweep (seed 0, depth `sweep_depth`).
        target: training loss (nats per byte) for "steps to target".
        text_file: the text to model; default: the standard-library corpus.
        out: folder for report.md, results.csv and the PNGs.
        resume: reuse finished runs of the same settings in `out` (a killed arena goes on).
        workers: runs trained at once, in processes of their own. Default: one per CPU core, each on one
            thread, without a GPU (small models use two threads poorly: two one-thread runs at once
            finished 1.5x faster than one after the other on two threads); one with a GPU.
    """
    designs, depths = designs or list(DESIGNS), depths or [4, 8, 16]
    seeds, sweep, folder = seeds or [0, 1, 2], sweep or [1e-3, 3e-3, 1e-2, 3e-2], Path(out)
    unknown = [d for d in designs if d not in DESIGNS]
    if unknown:
        raise ValueError(f"unknown designs {unknown}; choose from {list(DESIGNS)}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers={workers}: give at least 1, or leave it out for one per CPU core")

    def settings(design: str, depth: int, seed: int, rate: float) -> dict[str, Any]:
        return dict(design=design, depth=depth, seed=seed, lr=rate, steps=steps, dim=dim, heads=heads,
                    target=target, text_file=text_file, batch_size=batch_size)  # fmt: skip

    main = [settings(d, depth, s, lr) for depth in depths for d in designs for s in seeds]
    sweep_runs = [settings(d, sweep_depth, seeds[0], rate) for d in designs for rate in sweep]
    results = train_all(main + sweep_runs, folder / "runs", workers, resume)
    runs, swept = [results[run_name(s)] for s in main], [results[run_name(s)] for s in sweep_runs]
    base = baseline(designs)
    times = step_times(lambda d, depth: CharLM(gpt_config(d, depth, dim, heads)), designs, depths, batch_size, base)
    unigram = unigram_bits(text_file)
    tables = [
        ("Held-out bits per byte (mean ± std over seeds)", markdown_table(summary(runs, designs, depths))),
        ("Stability: bits per byte by learning rate", markdown_table(stability(swept, designs, sweep, unigram))),
        (
            f"Cost against {'pre-norm' if base == 'pre' else base} at each depth "
            "(time per step: median ratio over 3 interleaved rounds, timed alone after the runs)",
            markdown_table(cost(runs, times, designs, depths)),
        ),
    ]
    figs = plot_arena(runs, designs, depths, folder)
    intro = (
        f"GPT width {dim}, {heads} heads, 64 bytes of context, batch {batch_size}, {steps} steps of AdamW at lr {lr} "
        f"with no warm-up, gradient clipping 1.0; seeds {seeds}; text: {text_file or 'the standard-library corpus'}. "
        f"Unigram entropy of the training bytes: {unigram:.2f} bits. A run that trains ends below it; "
        f"'steps to target' counts steps until the smoothed training loss reaches {target} nats."
    )
    path = write_report(folder, "Residual arena", intro, tables, figs)
    for _, table in tables:
        print(table + "\n")
    print(f"report: {path}")
    return path


def run_name(settings: dict[str, Any]) -> str:
    s = settings
    return f"{s['design'].replace(' ', '_')}-L{s['depth']}-seed{s['seed']}-lr{s['lr']:g}"


def train_all(todo: list[dict[str, Any]], folder: Path, workers: int | None, resume: bool) -> dict[str, dict]:
    """Every run's result by `run_name`: finished ones read back (with `resume`), the rest trained by
    `workers` processes at once, the longest first, each kept in folder/<name>/result.json as it ends."""
    unique = {run_name(s): s for s in todo}  # the sweep's run at the main lr and depth is a main run
    results = {n: r for n, s in unique.items() if resume and (r := finished_run(folder / n / "result.json", s))}
    if results:
        print(f"arena: reusing {len(results)} finished runs in {folder} (--resume false trains them again)")
    missing = sorted((n for n in unique if n not in results), key=lambda n: -expected_cost(unique[n]))
    gpu, cores = torch.cuda.is_available(), cpu_cores()
    workers = workers or (1 if gpu else cores)
    threads = None if gpu and workers == 1 else max(1, cores // workers)
    start = time.perf_counter()

    def done(name: str, result: dict[str, Any]) -> None:
        results[name] = result
        k = len(results) - (len(unique) - len(missing))
        print(f"arena [{k}/{len(missing)}] {name}: {result['held-out bits/byte']:.3f} bits/byte "
              f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip

    if workers == 1 or len(missing) <= 1:
        for n in missing:
            done(n, train_and_save(folder / n / "result.json", unique[n], threads))
        return results
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=quiet_worker) as pool:
        futures = {pool.submit(train_and_save, folder / n / "result.json", unique[n], threads): n for n in missing}
        try:
            for future in as_completed(futures):
                done(futures[future], future.result())
        except BaseException:  # a failed run (or Ctrl-C) ends the arena now, not after the queued runs
            pool.shutdown(cancel_futures=True)
            raise
    return results


def cpu_cores() -> int:
    """The CPU cores this process may run on (all of them where the OS does not say, as on macOS)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def expected_cost(settings: dict[str, Any]) -> float:
    """A run's relative time, to start the long ones first: depth, times 2.5 for the multi-stream designs."""
    return settings["depth"] * (2.5 if DESIGNS[settings["design"]].get("stack") in ("hyper", "mhc") else 1.0)


def quiet_worker() -> None:
    """A worker prints only its warnings: the pool reports each run as it ends."""
    quiet_lightning()
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)


def train_and_save(saved: Path, settings: dict[str, Any], threads: int | None) -> dict[str, Any]:
    """One run in this process, on `threads` CPU threads (None: torch's default), kept in `saved`."""
    if threads is not None:
        torch.set_num_threads(threads)
    return save_run(saved, settings, train_design(**settings))
