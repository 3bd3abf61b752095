"""The arena's report: its tables (designs against pre-norm, the sweep, the papers) and figures, from the runs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tasks.core.outputs import pyplot, save_figure
from tasks.data.char_text import CharTextDataModule
from tasks.lab.arena.designs import DESIGNS
from tasks.lab.arena.ngram import REFERENCES
from tasks.lab.report import markdown_table, smooth, write_report
from tasks.lab.stats import mean_and_sample_std, paired_difference

BPB = "held-out bits/byte"


def by_design(main: list[dict[str, Any]], design: str, seeds: list[int]) -> list[dict[str, Any]]:
    """The design's main runs in seed order (the pairing)."""
    runs = {r["seed"]: r for r in main if r["design"] == design}
    return [runs[s] for s in seeds]


def summary(
    main: list[dict[str, Any]],
    designs: list[str],
    seeds: list[int],
    chosen: dict[str, float],
    times: dict[tuple[str, int], float],
) -> list[dict[str, Any]]:
    base = [r[BPB] for r in by_design(main, "pre", seeds)]
    base_params = by_design(main, "pre", seeds)[0]["params"]
    rows = []
    for design in designs:
        runs = by_design(main, design, seeds)
        bpb = [r[BPB] for r in runs]
        mean, std = mean_and_sample_std(bpb)
        reached = [r["steps to target"] for r in runs if math.isfinite(r["steps to target"])]
        diverged = sum(r["diverged at"] != "no" for r in runs)
        rows.append(
            {
                "design": design,
                "lr": f"{chosen[design]:g}",
                "bits/byte, mean ± sd": f"{mean:.3f} ± {std:.3f}" + (f" ({diverged} diverged)" if diverged else ""),
                "vs pre-norm [95% CI]": "—" if design == "pre" else str(paired_difference(bpb, base)),
                "steps to target (seeds)": f"{sum(reached) / len(reached):.0f} ({len(reached)}/{len(runs)})"
                if reached
                else f"— (0/{len(runs)})",
                "time/step vs pre": f"{next(iter(v for (d, _), v in times.items() if d == design)):.2f}×",
                "params vs pre": f"{runs[0]['params'] / base_params:.3f}×",
            }
        )
    return rows


def sweep_table(
    swept: dict[str, dict[str, Any]],
    designs: list[str],
    grids: dict[str, list[float]],
    chosen: dict[str, float],
    seed: int,
) -> list[dict[str, Any]]:
    rates = sorted({r for g in grids.values() for r in g})
    rows = []
    for design in designs:
        row: dict[str, Any] = {"design": design}
        for rate in rates:
            run = next(
                (r for r in swept.values() if r["design"] == design and r["lr"] == rate and r["seed"] == seed), None
            )
            cell = "" if run is None else "diverged" if run["diverged at"] != "no" else f"{run[BPB]:.3f}"
            row[f"lr {rate:.2g}"] = f"**{cell}**" if run is not None and rate == chosen[design] else cell
        edge = chosen[design] in (grids[design][0], grids[design][-1])
        row["bracketed"] = "no: at the grid's edge" if edge else "yes"
        rows.append(row)
    return rows


def papers_table(main: list[dict[str, Any]], designs: list[str], seeds: list[int]) -> list[dict[str, Any]]:
    base = [r[BPB] for r in by_design(main, "pre", seeds)]
    rows = []
    for design in designs:
        entry = DESIGNS.get_builder(design)
        measured = (
            "the baseline"
            if design == "pre"
            else str(paired_difference([r[BPB] for r in by_design(main, design, seeds)], base)) + " bits/byte"
        )
        rows.append(
            {
                "design": design,
                "paper": entry.paper,
                "what the paper reports": entry.reported,
                "what the arena measured (vs pre-norm)": measured,
            }
        )
    return rows


def plot_arena(
    main: list[dict[str, Any]], designs: list[str], seeds: list[int], references: dict[str, float], out: Path
) -> dict[str, Path]:
    plt = pyplot()
    colors = dict(zip(designs, plt.get_cmap("tab20").colors, strict=False))
    figs = {}
    fig, ax = plt.subplots(figsize=(8, 5))
    for design in designs:
        run = by_design(main, design, seeds)[0]
        ax.plot(smooth(run["_losses"], 20), color=colors[design], label=design)
    ax.set(title=f"training loss, seed {seeds[0]}", xlabel="step", ylabel="nats per byte")
    ax.legend(fontsize=8)
    figs["loss"] = save_figure(fig, out / "loss_curves.png")
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(designs) + 2))
    base = [r[BPB] for r in by_design(main, "pre", seeds)]
    for i, design in enumerate(designs):
        bpb = [r[BPB] for r in by_design(main, design, seeds)]
        ax.scatter(bpb, [i] * len(bpb), color=colors[design], alpha=0.6)
        d = paired_difference(bpb, base)
        if design != "pre" and math.isfinite(d.low):
            pre_mean = sum(base) / len(base)
            ax.errorbar(pre_mean + d.mean, i, xerr=[[d.mean - d.low], [d.high - d.mean]], fmt="o", color="k", capsize=3)
    for name, bits in references.items():
        if bits < max(max(r[BPB] for r in main if math.isfinite(r[BPB])), 0) + 0.3:
            ax.axvline(bits, color="gray", ls="--", lw=1)
            ax.text(bits, len(designs) - 0.5, f" {name}", color="gray", fontsize=8)
    ax.set_yticks(range(len(designs)), designs)
    ax.set_xlabel("held-out bits per byte (dots: seeds; black: pre-norm's mean + the paired difference, 95% CI)")
    figs["designs"] = save_figure(fig, out / "designs.png")
    return figs


def write_arena_report(
    folder: Path,
    *,
    designs: list[str],
    seeds: list[int],
    grids: dict[str, list[float]],
    chosen: dict[str, float],
    main: list[dict[str, Any]],
    swept: dict[str, dict[str, Any]],
    references: dict[str, float],
    times: dict[tuple[str, int], float],
    data: CharTextDataModule,
    settings: dict[str, Any],
) -> Path:
    s = settings
    held = sum(len(b) for b in data.held_out)
    intro = (
        f"GPT width {s['dim']}, {s['heads']} heads, {s['depth']} layers, {s['block_size']} bytes of context, batches "
        f"of {s['batch_size']}, {s['steps']} steps of AdamW (betas 0.9, 0.95) with {s['warmup']:.0%} linear warm-up "
        f"and cosine decay to 10%, weight decay 0.1 on Linear and Embedding weights only, gradient clipping 1.0; "
        f"seeds {seeds}. Text: {s['text_file'] or 'the standard-library corpus'} ({data.num_bytes:,} bytes, "
        f"SHA-256 {data.sha256}); {held:,} bytes held out in {len(data.held_out)} blocks spread across it, every "
        f"one scored. Each design at its own learning rate, the best of a sweep at seed {seeds[0]} that brackets it "
        "(below). Differences are paired by seed: the mean of (design − pre-norm) over seeds with its 95% confidence "
        "interval (Student's t, sample standard deviation); * marks an interval that excludes 0 (below 0: better "
        f"than pre-norm). 'Steps to target' counts steps until the smoothed training loss reaches {s['target']} "
        "nats, averaged over the seeds that reached it, which it names."
    )
    refs = [
        {"reference": f"{name} counts (add-{REFERENCES[name][1]:g})", "bits/byte": f"{bits:.3f}"}
        for name, bits in references.items()
    ]
    tables = [
        (
            "Designs against pre-norm (held-out bits per byte)",
            markdown_table(summary(main, designs, seeds, chosen, times)),
        ),
        ("Count models on the same held-out bytes", markdown_table(refs)),
        (
            f"Learning-rate sweep (seed {seeds[0]}; the chosen rate in bold)",
            markdown_table(sweep_table(swept, designs, grids, chosen, seeds[0])),
        ),
        ("What each paper reports, and what the arena measured", markdown_table(papers_table(main, designs, seeds))),
    ]
    caveat = (
        "The arena compares designs on one small model, one text and a budget of minutes: a difference it marks is "
        "real for this setting and these seeds, and says nothing by itself about the scales the papers report on. "
        "An interval that includes 0 means the arena cannot tell the design from pre-norm here."
    )
    tables.append(("What the arena can and cannot say", caveat))
    figs = plot_arena(main, designs, seeds, references, folder)
    return write_report(folder, "Residual arena", intro, tables, figs)


__all__ = ["papers_table", "summary", "sweep_table", "write_arena_report"]
