"""The arena's report: its tables (bits per byte, stability, cost) and figures, from the runs' results."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tasks.core.outputs import pyplot, save_figure
from tasks.lab.report import mean_std, smooth


def summary(runs: list[dict[str, Any]], designs: list[str], depths: list[int]) -> list[dict[str, Any]]:
    rows = []
    for design in designs:
        row: dict[str, Any] = {"design": design}
        for depth in depths:
            mine = [r for r in runs if r["design"] == design and r["depth"] == depth]
            mean, std = mean_std([r["held-out bits/byte"] for r in mine])
            steps = mean_std([r["steps to target"] for r in mine])[0]
            bad = sum(r["diverged at"] != "no" for r in mine)
            row[f"{depth} layers"] = f"{mean:.3f} ± {std:.3f}" + (f" ({bad} diverged)" if bad else "")
            row[f"steps to target, {depth}"] = "—" if math.isnan(steps) else f"{steps:.0f}"
        rows.append(row)
    return rows


def stability(swept: list[dict[str, Any]], designs: list[str], rates: list[float], unigram: float) -> list[dict]:
    rows = []
    for design in designs:
        row: dict[str, Any] = {"design": design}
        trains = []
        for rate in rates:
            (r,) = [r for r in swept if r["design"] == design and r["lr"] == rate]
            bpb = r["held-out bits/byte"]
            row[f"lr {rate:g}"] = "diverged" if r["diverged at"] != "no" else f"{bpb:.3f}"
            if bpb < unigram:
                trains.append(rate)
        row["largest lr that trains"] = f"{max(trains):g}" if trains else "none"
        rows.append(row)
    return rows


def baseline(designs: list[str]) -> str:
    """The design that costs are measured against: pre-norm, or the first design when pre-norm is not run."""
    return "pre" if "pre" in designs else designs[0]


def cost(runs: list[dict[str, Any]], times: dict[tuple[str, int], float], designs: list[str],
         depths: list[int]) -> list[dict[str, Any]]:  # fmt: skip
    def params(design: str, depth: int) -> int:
        return next(r["params"] for r in runs if r["design"] == design and r["depth"] == depth)

    base, rows = baseline(designs), []
    for design in designs:
        row: dict[str, Any] = {"design": design}
        for depth in depths:
            row[f"time/step, {depth}"] = f"{times[design, depth]:.2f}×"
            row[f"params, {depth}"] = f"{params(design, depth) / params(base, depth):.3f}×"
        rows.append(row)
    return rows


def plot_arena(runs: list[dict[str, Any]], designs: list[str], depths: list[int], out: Path) -> dict[str, Path]:
    plt = pyplot()
    tab20 = plt.get_cmap("tab20").colors  # the ten strong colours first, then their light twins: 20 designs
    colors = dict(zip(designs, [tab20[i] for i in [*range(0, 20, 2), *range(1, 20, 2)]], strict=False))
    seed0 = min(r["seed"] for r in runs)
    figs = {}
    mid, deep = depths[len(depths) // 2], depths[-1]
    fig, ax = plt.subplots(figsize=(8, 5))
    for r in runs:
        if r["depth"] == mid and r["seed"] == seed0:
            ax.plot(smooth(r["_losses"], 10), color=colors[r["design"]], label=r["design"])
    ax.set(title=f"training loss, {mid} layers, seed {seed0}", xlabel="step", ylabel="nats per byte")
    ax.legend(fontsize=8)
    figs["loss"] = save_figure(fig, out / "loss_curves.png")
    fig, ax = plt.subplots(figsize=(8, 5))
    for design in designs:
        stats = [mean_std([r["held-out bits/byte"] for r in runs if r["design"] == design and r["depth"] == d])
                 for d in depths]  # fmt: skip
        ax.errorbar(depths, [m for m, _ in stats], yerr=[s for _, s in stats], fmt="-o", capsize=3,
                    color=colors[design], label=design)  # fmt: skip
    ax.set(title="held-out bits per byte against depth", xlabel="layers", xticks=depths)
    ax.legend(fontsize=8)
    figs["depth"] = save_figure(fig, out / "bits_vs_depth.png")
    for key, title, name in (("_rms", "RMS of each layer's input", "stream_rms"),
                             ("_grad", "‖dL/dx‖ at each layer's input", "grad_norm")):  # fmt: skip
        fig, ax = plt.subplots(figsize=(8, 5))
        for r in runs:
            if r["depth"] == deep and r["seed"] == seed0 and r[key]:
                ax.plot(r[key], color=colors[r["design"]], label=r["design"])
        ax.set(title=f"{title}, {deep} layers, end of training", xlabel="sub-layer (input → output)", yscale="log")
        ax.legend(fontsize=8)
        figs[name] = save_figure(fig, out / f"{name}.png")
    return figs
