"""Plain against residual twins at several depths (He et al. 2015, Fig. 6): `python -m tasks.lab depth`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from tasks.core.outputs import write_csv
from tasks.data.sources import Source
from tasks.lab.families import FAMILIES, train_twin, twin_name
from tasks.lab.report import markdown_table, plot_depth, public, write_report
from tasks.lab.runner import run_all


def depth(
    family: Literal["resnet", "lstm"] = "resnet",
    depths: list[int] | None = None,
    epochs: int = 4,
    seeds: list[int] | None = None,
    out: str = "runs/lab/depth",
    source: Source | None = None,
    record_every: int = 10,
    limit_batches: float = 1.0,
    lr: float | None = None,
    resume: bool = True,
    workers: int = 1,
) -> Path:
    """Plain against residual twins at several depths, same data, seeds and budget.

    Args:
        family: "resnet" (CIFAR-style ResNet-6n+2 on MNIST digits) or "lstm" (stacked LSTMs reading digit strips).
        depths: depths to train; default 8, 20, 56 (resnet) or 2, 4, 8 (lstm).
        epochs: training epochs of every run (the shared budget).
        seeds: one run per seed for each twin.
        out: folder for report.md, results.csv and the PNGs.
        source: where the digits come from (None: the embedded 5k subset; "auto": a local folder, then a download).
        record_every: steps between gradient-flow records.
        limit_batches: share (or number) of training batches per epoch, to shrink the budget.
        lr: peak learning rate; default: the task's own.
        resume: reuse runs of the same settings already finished in `out` (a killed sweep goes on).
        workers: runs trained at once, each in its own process.
    """
    spec = FAMILIES[family]
    depths, seeds, folder = depths or spec.depths, seeds or [0], Path(out)
    options = {"lr": lr} if lr is not None else {}
    todo = [
        dict(
            family=family,
            depth=d,
            residual=residual,
            seed=s,
            epochs=epochs,
            source=source,
            options=options,
            record_every=record_every,
            limit_batches=limit_batches,
            out=str(folder),
        )
        for d in depths
        for residual in (False, True)
        for s in seeds
    ]
    results = run_all({twin_name(s): s for s in todo}, train_twin, folder / "runs", workers, resume)
    rows = [results[twin_name(s)] for s in todo]
    table = public(rows)
    write_csv(folder / "results.csv", list(table[0]), [list(r.values()) for r in table])
    figs = plot_depth(rows, spec.metric, folder)
    intro = (
        f"{family}: plain and residual twins at depths {depths}, {epochs} epochs each, seeds {seeds}, "
        f"the same data and schedule. Gradient norms are ‖dL/dx‖ at the input of the first block."
    )
    path = write_report(
        folder, f"Depth: plain against residual ({family})", intro, [("Results", markdown_table(table))], figs
    )
    print(markdown_table(table))
    print(f"report: {path}")
    return path


__all__ = ["depth"]
