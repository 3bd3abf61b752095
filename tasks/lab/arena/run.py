"""The arena: every residual design on one GPT, one text and one protocol; `python -m tasks.lab arena`.

python -m tasks.lab arena                                    # the CPU default (see DEFAULT), within 30 minutes
python -m tasks.lab arena --designs all                      # every design of tasks/lab/arena/designs.py
python -m tasks.lab arena --text_file my_corpus.txt          # your own text
python -m tasks.lab arena --dim 512 --depth 12 --block_size 256 --batch_size 64 --steps 4000 \\
    --precision bf16-mixed --workers 4 --designs all         # sized for a GPU

The protocol: byte-level language modelling of a text (default: a fixed list of Python standard-library modules,
whose SHA-256 the report prints), with a tenth of it held out in 4 KB blocks spread across it. Every design gets
its own learning rate from a sweep at seed 0 that brackets it (a best rate at the grid's edge extends the grid),
the same warm-up and cosine decay, no weight decay on its connection weights, and its paper's initialisation;
then the other seeds at that rate. The seeds pair the runs (the same data order and draws for every design), so
the report gives each design's difference from pre-norm with a 95% confidence interval, and the bits per byte of
unigram, bigram and trigram count models on the same held-out bytes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tasks.data.char_text import CharTextDataModule
from tasks.lab.arena.designs import DEFAULT, DESIGNS
from tasks.lab.arena.ngram import reference_bits
from tasks.lab.arena.report import write_arena_report
from tasks.lab.arena.timing import step_times
from tasks.lab.arena.train import CharLM, gpt_config, train_design
from tasks.lab.runner import run_all


def run_name(s: dict[str, Any]) -> str:
    return f"{s['design']}-L{s['depth']}-seed{s['seed']}-lr{s['lr']:g}"


def expected_cost(s: dict[str, Any]) -> float:
    """A run's relative time, to start the long ones first: steps times depth, more for multi-stream designs."""
    multi = DESIGNS.get_builder(s["design"]).options.get("stack") in ("hyper", "mhc", "frac", "attnres", "mudd")
    return s["steps"] * s["depth"] * (1.8 if multi else 1.0)


def best_rate(runs: list[dict[str, Any]]) -> float:
    """The rate of the lowest held-out bits per byte (a diverged run counts as the worst)."""
    return min(runs, key=lambda r: (math.isnan(r["held-out bits/byte"]), r["held-out bits/byte"]))["lr"]


def describe(name: str, result: dict[str, Any]) -> str:
    return f"{name}: {result['held-out bits/byte']:.3f} bits/byte"


def arena(
    designs: list[str] | None = None,
    depth: int = 4,
    seeds: list[int] | None = None,
    steps: int = 400,
    batch_size: int = 16,
    block_size: int = 128,
    dim: int = 128,
    heads: int = 4,
    rates: list[float] | None = None,
    extend: int = 2,
    warmup: float = 0.1,
    target: float = 2.0,
    precision: str | None = None,
    text_file: str | None = None,
    out: str = "runs/lab/arena",
    resume: bool = True,
    workers: int | None = None,
) -> Path:
    """Every residual design on the same GPT, text, budget and seeds, each at its own best learning rate.

    Sized for a GPU: --designs all --dim 512 --depth 12 --block_size 256 --batch_size 64 --steps 4000
    --precision bf16-mixed --workers 4 (several runs at once share the device).

    Args:
        designs: names from `tasks.lab.arena.designs.DESIGNS`, or ["all"]; default: its `DEFAULT`.
        depth: GPT layers (each an attention and an MLP sub-layer).
        seeds: seeds of every design; the first is also the sweep's.
        steps: training steps per run.
        batch_size: windows per step.
        block_size: bytes of context per window.
        dim: width; heads: attention heads.
        rates: the learning rates the sweep starts from (seed 0); default 1e-3, 3e-3, 1e-2.
        extend: times a design's grid may grow by one rate (x3 or /3) where its best rate sits at the edge.
        warmup: the share of the steps spent warming up (linear), before cosine decay to 10% of the rate.
        target: the smoothed training loss (nats per byte) that "steps to target" counts to.
        precision: Lightning's precision, e.g. "bf16-mixed" on a GPU (None: 32-bit).
        text_file: the text to model; default: the standard-library corpus.
        out: folder for report.md, the runs' results and the PNGs.
        resume: reuse finished runs of the same settings in `out` (a killed arena goes on).
        workers: runs trained at once, each in its own process. Default: one per CPU core, each on one thread,
            without a GPU; one with a GPU (give more to share it).
    """
    designs = list(DESIGNS) if designs == ["all"] else designs or list(DEFAULT)
    for d in designs:
        DESIGNS.check(d)
    if "pre" not in designs:
        designs = ["pre", *designs]  # the baseline every difference is taken against
    seeds, rates, folder = seeds or [0, 1, 2], sorted(rates or [1e-3, 3e-3, 1e-2]), Path(out)
    if workers is not None and workers < 1:
        raise ValueError(f"workers={workers}: give at least 1, or leave it out for one per CPU core")

    def settings(design: str, seed: int, lr: float) -> dict[str, Any]:
        return dict(
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
            text_file=text_file,
        )

    def train(todo: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return run_all(
            {run_name(s): s for s in todo}, train_design, folder / "runs", workers, resume, expected_cost, describe
        )

    grids = {d: list(rates) for d in designs}
    swept: dict[str, dict[str, Any]] = train([settings(d, seeds[0], r) for d in designs for r in rates])
    for _ in range(extend):  # a best rate at the grid's edge: one more rate beyond it
        more = []
        for d in designs:
            best = best_rate([swept[run_name(settings(d, seeds[0], r))] for r in grids[d]])
            if best in (grids[d][0], grids[d][-1]):
                new = best / 3 if best == grids[d][0] else best * 3
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
    references = reference_bits(data.train_bytes, data.val_set)
    times = step_times(
        lambda d, depth: CharLM(gpt_config(d, depth, dim, heads, block_size)), designs, [depth], batch_size, "pre"
    )
    path = write_arena_report(
        folder,
        designs=designs,
        seeds=seeds,
        grids=grids,
        chosen=chosen,
        main=[runs[run_name(s)] for s in main],
        swept={n: r for n, r in swept.items()},
        references=references,
        times=times,
        data=data,
        settings=settings("<design>", seeds[0], 0.0),
    )
    print(f"report: {path}")
    return path


__all__ = ["arena", "best_rate", "run_name"]
