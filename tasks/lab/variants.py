"""Residual options side by side on one ResNet depth: `python -m tasks.lab variants`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tasks.core.gradient_flow import plot_gradient_flow
from tasks.core.outputs import pyplot, save_figure, write_csv
from tasks.data.sources import Source
from tasks.lab.families import train_twin, twin_name
from tasks.lab.report import markdown_table, mean_std, public, write_report
from tasks.lab.runner import run_all

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


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")  # a folder name: "pre-norm (v2)" -> "pre_norm_v2"


def variants(
    depth: int = 20,
    names: list[str] | None = None,
    epochs: int = 3,
    seeds: list[int] | None = None,
    out: str = "runs/lab/variants",
    source: Source | None = None,
    record_every: int = 25,
    limit_batches: float = 1.0,
    resume: bool = True,
    workers: int = 1,
) -> Path:
    """One `Residual` option changed at a time on one ResNet, same seeds and budget; mean and spread over seeds.

    Args:
        depth: CIFAR-style ResNet depth (6n+2).
        names: variants to run (keys of `tasks.lab.variants.VARIANTS`); default all.
        epochs: training epochs of every run.
        seeds: seeds per variant (at least 3 for a spread).
        out: folder for report.md, results.csv and the PNGs.
        source: where the digits come from.
        record_every: steps between gradient-flow records.
        limit_batches: share (or number) of training batches per epoch.
        resume: reuse runs of the same settings already finished in `out` (a killed sweep goes on).
        workers: runs trained at once, each in its own process.
    """
    names, seeds, folder = names or list(VARIANTS), seeds or [0, 1, 2], Path(out)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    todo = {
        f"{_slug(name)}/{twin_name(s)}": s
        for name in names
        for s in [
            dict(
                family="resnet",
                depth=depth,
                residual=True,
                seed=seed,
                epochs=epochs,
                source=source,
                options=VARIANTS[name],
                record_every=record_every,
                limit_batches=limit_batches,
                out=str(folder / _slug(name)),
            )
            for seed in seeds
        ]
    }
    results = run_all(todo, train_twin, folder, workers, resume)
    runs = {name: [results[k] for k in todo if k.startswith(f"{_slug(name)}/")] for name in names}
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
    path = write_report(
        folder, f"Residual variants (ResNet-{depth})", intro, [("Results", markdown_table(summary))], figs
    )
    print(markdown_table(summary))
    print(f"report: {path}")
    return path


__all__ = ["VARIANTS", "variants"]
