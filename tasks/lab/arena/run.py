"""The arena: every residual design on one model, one text and one protocol; `python -m tasks.lab arena`.

python -m tasks.lab arena                                    # the CPU default (see DEFAULT), within 30 minutes
python -m tasks.lab arena --family lstm                      # the same on a 6-layer LSTM language model
python -m tasks.lab arena --designs all                      # every design of tasks/lab/arena/designs.py
python -m tasks.lab arena --text_file my_corpus.txt          # your own text
python -m tasks.lab arena --dim 512 --depth 12 --block_size 256 --batch_size 64 --steps 4000 \\
    --workers 4 --designs all                                # sized for a GPU

The families: a GPT, or a recurrent language model of LSTM (`--family lstm`) or GRU (`--family gru`) layers, each
with every design that has a faithful form in it. The protocol: byte-level language modelling of a text (default:
a fixed list of Python standard-library modules, whose SHA-256 the report prints), with a tenth of it held out in
4 KB blocks spread across it, alternately validation and test. Every design gets its own learning rate from a sweep
at the first seed on a ×2 grid, chosen on validation bytes and grown where the best rate sits at the grid's edge;
the same warm-up and cosine decay; the one optimiser policy of `residual_kit.optim`; and its paper's
initialisation; then the other seeds at that rate.
The seeds pair the runs (the same data order and draws for every design), so the report gives each design's
difference from pre-norm on the test bytes with a 95% confidence interval and a Holm-adjusted p-value, its
effective speed-up once its cost per step is charged, and the count models (add-k, and Kneser-Ney up to order 5)
on the same test bytes.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Literal

import torch

from tasks.data.char_text import CharTextDataModule
from tasks.lab.arena.designs import DEFAULT, DESIGNS, Family, designs_of
from tasks.lab.arena.gains import matmul_flops, matmul_peak
from tasks.lab.arena.ngram import reference_bits
from tasks.lab.arena.report import write_arena_report
from tasks.lab.arena.timing import step_times
from tasks.lab.arena.train import VAL, CharLM, net_config, train_design
from tasks.lab.runner import run_all


def run_name(s: dict[str, Any]) -> str:
    return f"{s['design']}-L{s['depth']}-seed{s['seed']}-lr{s['lr']:g}"


def best_rate(runs: list[dict[str, Any]]) -> float:
    """The rate of the lowest validation bits per byte (a diverged run counts as the worst); test bytes play no
    part."""
    return min(runs, key=lambda r: (math.isnan(r[VAL]), r[VAL]))["lr"]


def describe(name: str, result: dict[str, Any]) -> str:
    return f"{name}: validation {result[VAL]:.3f} bits/byte"


def choose_designs(designs: list[str] | Literal["all"] | None, family: Family = "gpt") -> list[str]:
    """The designs a run compares, pre-norm first (the baseline of every difference); "all": every design with a
    form in `family`."""
    chosen = designs_of(family) if designs == "all" or designs == ["all"] else list(designs or DEFAULT)
    for d in chosen:
        DESIGNS.check(d)
        DESIGNS[d].net_options(family)  # one line for a design with no form in this family
    return ["pre", *(d for d in chosen if d != "pre")]


def arena(
    designs: list[str] | Literal["all"] | None = None,
    family: Family = "gpt",
    depth: int | None = None,
    seeds: list[int] | None = None,
    steps: int = 700,
    batch_size: int = 16,
    block_size: int = 128,
    dim: int = 128,
    heads: int = 4,
    rates: list[float] | None = None,
    extend: int = 3,
    warmup: float = 0.1,
    target: float = 2.0,
    precision: str | None = "bf16-mixed",
    compile: bool | None = None,
    text_file: str | None = None,
    out: str | None = None,
    resume: bool = True,
    workers: int | None = None,
) -> Path:
    """Every residual design on the same model, text, budget and seeds, each at its own best learning rate.

    Sized for a GPU: --designs all --dim 512 --depth 12 --block_size 256 --batch_size 64 --steps 4000
    --workers 4 (several runs at once share the device).

    Args:
        designs: names from `tasks.lab.arena.designs.DESIGNS`, or all (those with a form in `family`); default:
            its `DEFAULT`.
        family: "gpt", or a recurrent language model: "lstm" or "gru" (embedding, `depth` recurrent layers of width
            `dim`, each a residual block, the head tied to the embedding).
        depth: layers; default 4 for the GPT (each an attention and an MLP sub-layer), 6 recurrent layers.
        seeds: seeds of every design; the first is also the sweep's.
        steps: training steps per run.
        batch_size: windows per step.
        block_size: bytes of context per window.
        dim: width; heads: attention heads (the GPT's).
        rates: the learning rates the sweep starts from (seed 0), a ×2 grid; default 1.5e-3, 3e-3, 6e-3.
        extend: times a design's grid may grow by one rate (×2 or /2) where its best rate sits at the edge.
        warmup: the share of the steps spent warming up (linear), before cosine decay to 10% of the rate.
        target: the smoothed training loss (nats per byte) that "steps to target" counts to.
        precision: Lightning's precision of the training step ("bf16-mixed": bfloat16 autocast, on a CPU too;
            None: 32-bit). Scoring is in 32-bit.
        compile: compile each run's training step (`torch.compile`); default: the GPT's only (a compiled step of
            the 6-layer LSTM model took 170 ms against 139 eager, on one CPU thread).
        text_file: the text to model; default: the standard-library corpus.
        out: folder for report.md, the runs' results and the PNGs; default runs/lab/arena (the GPT) or
            runs/lab/arena-<family>.
        resume: reuse finished runs of the same settings in `out` (a killed arena goes on).
        workers: runs trained at once, each in its own process. Default: one per CPU core, each on one thread,
            without a GPU; one with a GPU (give more to share it).
    """
    recurrent = family != "gpt"
    designs = choose_designs(designs, family)
    depth = depth or (6 if recurrent else 4)
    compile = (not recurrent) if compile is None else compile
    out = out or ("runs/lab/arena" if family == "gpt" else f"runs/lab/arena-{family}")
    seeds, rates, folder = seeds or [0, 1, 2, 3, 4], sorted(rates or [1.5e-3, 3e-3, 6e-3]), Path(out)
    if workers is not None and workers < 1:
        raise ValueError(f"workers={workers}: give at least 1, or leave it out for one per CPU core")

    def settings(design: str, seed: int, lr: float) -> dict[str, Any]:
        return dict(
            family=family,
            design=design,
            depth=depth,
            seed=seed,
            lr=lr,
            steps=steps,
            dim=dim,
            heads=heads,
            block_size=block_size,
            batch_size=batch_size,
            warmup=warmup,
            target=target,
            precision=precision,
            compile=compile,
            text_file=text_file,
        )

    def build(design: str, depth: int) -> CharLM:
        return CharLM(net_config(design, depth, dim, heads, block_size, family), compile=compile)

    times = step_times(build, designs, [depth], batch_size, block_size, "pre", precision=precision)
    costs = {d: c[0] for (d, _), c in times.items()}
    spreads = {d: c[1:] for (d, _), c in times.items()}
    print("time per step against pre-norm: " + ", ".join(f"{d} {c:.2f}×" for d, c in costs.items()), flush=True)

    def train(todo: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return run_all(
            {run_name(s): s for s in todo},
            train_design,
            folder / "runs",
            workers,
            resume,
            lambda s: costs[s["design"]],
            describe,
        )

    grids = {d: list(rates) for d in designs}
    swept: dict[str, dict[str, Any]] = train([settings(d, seeds[0], r) for d in designs for r in rates])
    for _ in range(extend):  # a best rate at the grid's edge: one more rate beyond it
        more = []
        for d in designs:
            best = best_rate([swept[run_name(settings(d, seeds[0], r))] for r in grids[d]])
            if best in (grids[d][0], grids[d][-1]):
                new = best / 2 if best == grids[d][0] else best * 2
                grids[d] = sorted([*grids[d], new])
                more.append(settings(d, seeds[0], new))
        if not more:
            break
        swept |= train(more)
    chosen = {d: best_rate([swept[run_name(settings(d, seeds[0], r))] for r in grids[d]]) for d in designs}
    main = [settings(d, s, chosen[d]) for d in designs for s in seeds]
    runs = {**swept, **train([s for s in main if run_name(s) not in swept])}

    data = CharTextDataModule(text_file, block_size=block_size)
    data.setup("fit")
    references = reference_bits(data.train_bytes, data.test_set)
    base = [runs[run_name(s)] for s in main if s["design"] == "pre"]
    attention = 0 if recurrent else 12 * depth * block_size * dim  # per token (Kaplan et al. 2020)
    step_flops = matmul_flops(build("pre", depth), batch_size * block_size, attention)
    step_seconds = statistics.median(r["step seconds"] for r in base)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the rate of one thread, as each run had
    peaks = {"peak_fp32": matmul_peak(torch.float32), "peak_bf16": matmul_peak(torch.bfloat16)}
    torch.set_num_threads(threads)
    throughput = {
        "step_flops": step_flops,
        "step_seconds": step_seconds,
        "achieved": step_flops / step_seconds,
        **peaks,
        "precision": precision or "32-bit",
        "compile": compile,
    }
    path = write_arena_report(
        folder,
        designs=designs,
        seeds=seeds,
        grids=grids,
        chosen=chosen,
        main=[runs[run_name(s)] for s in main],
        swept=swept,
        references=references,
        costs=costs,
        spreads=spreads,
        throughput=throughput,
        data=data,
        settings=settings("<design>", seeds[0], 0.0),
    )
    print(f"report: {path}")
    return path


__all__ = ["arena", "best_rate", "choose_designs", "run_name"]
