"""The lab's report: tables, figures and `report.md` from the results of its runs."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import torch

from tasks.core.outputs import atomic_write, pyplot, save_figure


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and population standard deviation of the finite values (NaN if there are none)."""
    finite = [v for v in values if math.isfinite(v)]
    return (statistics.fmean(finite), statistics.pstdev(finite)) if finite else (math.nan, math.nan)


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else (f"{value:.3g}" if abs(value) < 1e-2 else f"{value:.4f}")
    return str(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    cols = [c for c in rows[0] if not c.startswith("_")]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def smooth(values: list[float], k: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v - (values[i - k] if i >= k else 0.0)
        out.append(acc / min(i + 1, k))
    return out


def plot_depth(rows: list[dict[str, Any]], metric: str, out: Path) -> dict[str, Path]:
    """Loss curves (Fig. 6 style), accuracy against depth, first-block gradient against depth."""
    plt = pyplot()
    depths = sorted({r["depth"] for r in rows})
    colors = dict(zip(depths, plt.get_cmap("viridis")(torch.linspace(0, 0.85, len(depths)).tolist()), strict=True))
    figs = {}

    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    for ax, net in zip(axes, ("plain", "residual"), strict=True):
        for r in rows:
            if r["net"] == net and r["seed"] == rows[0]["seed"]:
                k = max(1, len(r["_losses"]) // 50)
                ax.plot(smooth(r["_losses"], k), color=colors[r["depth"]], label=f"{net}-{r['depth']}")
        ax.set_title(f"{net} nets: training loss")
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.legend()
    figs["loss"] = save_figure(fig, out / "loss_curves.png")

    def by_depth(net: str, key: str) -> tuple[list[float], list[float]]:
        stats = [mean_std([r[key] for r in rows if r["net"] == net and r["depth"] == d]) for d in depths]
        return [m for m, _ in stats], [s for _, s in stats]

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for net, style in (("plain", "--o"), ("residual", "-o")):
        for key, color in ((f"train {metric}", "tab:blue"), (f"test {metric}", "tab:orange")):
            mean, spread = by_depth(net, key)
            axes[0].errorbar(depths, mean, yerr=spread, fmt=style, color=color, label=f"{net}, {key}", capsize=3)
        color = "tab:red" if net == "plain" else "tab:green"
        mean, spread = by_depth(net, "first-block grad at init")
        axes[1].errorbar(depths, mean, yerr=spread, fmt=style, color=color, label=f"{net}, at init", capsize=3)
        mean, spread = by_depth(net, "first-block grad (mean)")
        axes[1].errorbar(
            depths, mean, yerr=spread, fmt=style, color=color, alpha=0.4, capsize=3, label=f"{net}, mean over training"
        )
    axes[0].set_title(f"{metric} against depth")
    axes[1].set_title("‖dL/dx‖ at the first block against depth")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("depth")
        ax.set_xticks(depths)
        ax.legend(fontsize=8)
    figs["depth"] = save_figure(fig, out / "depth.png")

    deepest = [r for r in rows if r["depth"] == depths[-1] and r["seed"] == rows[0]["seed"]]
    fig, axes = plt.subplots(1, len(deepest), figsize=(7 * len(deepest), 4), sharey=True, squeeze=False)
    for ax, r in zip(axes[0], deepest, strict=True):
        for j, record in enumerate(r["_gradflow"]):
            ax.plot(record["input_grad"], color=plt.get_cmap("viridis")(1 - j / max(1, len(r["_gradflow"]) - 1)))
        ax.set_yscale("log")
        ax.set_title(f"{r['net']}-{r['depth']}: ‖dL/dx_l‖ per block (dark = later steps)")
        ax.set_xlabel("block (input side → output side)")
    figs["flow"] = save_figure(fig, out / f"gradient_flow_depth{depths[-1]}.png")
    return figs


def write_report(out: Path, title: str, intro: str, tables: list[tuple[str, str]], figs: dict[str, Path]) -> Path:
    lines = [f"# {title}", "", intro, ""]
    for heading, table in tables:
        lines += [f"## {heading}", "", table, ""]
    lines += ["## Figures", ""] + [f"![{k}]({p.name})" for k, p in figs.items()] + [""]
    with atomic_write(out / "report.md") as tmp:
        tmp.write_text("\n".join(lines))
    return out / "report.md"


def public(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
