"""The arena's report: its tables (designs against pre-norm, the count models, the sweep, the papers, the throughput)
and figures, from the runs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tasks.core.outputs import pyplot, save_figure
from tasks.data.char_text import CharTextDataModule
from tasks.lab.arena.designs import DESIGNS
from tasks.lab.arena.gains import (
    FAILED_BITS,
    effective_speedup,
    median_speedup,
    scored,
    steps_to_target,
    throughput_text,
    validation_curve,
)
from tasks.lab.arena.ngram import REFERENCES
from tasks.lab.arena.train import VAL, model_text
from tasks.lab.report import markdown_table, smooth, write_report
from tasks.lab.stats import PairedDifference, holm, mean_and_sample_std, paired_difference

LEVEL = 0.05  # the family-wise error rate of the claims (Holm-adjusted p below it)


def by_design(main: list[dict[str, Any]], design: str, seeds: list[int]) -> list[dict[str, Any]]:
    """The design's main runs in seed order (the pairing)."""
    runs = {r["seed"]: r for r in main if r["design"] == design}
    return [runs[s] for s in seeds]


def differences(
    main: list[dict[str, Any]], designs: list[str], seeds: list[int]
) -> tuple[dict[str, PairedDifference], dict[str, float]]:
    """Each design's paired difference from pre-norm on the test bytes (failures scored as `FAILED_BITS`), and the
    Holm-adjusted p-values over every design compared in the run."""
    base = [scored(r) for r in by_design(main, "pre", seeds)]
    diffs = {d: paired_difference([scored(r) for r in by_design(main, d, seeds)], base) for d in designs if d != "pre"}
    return diffs, holm({d: diff.p for d, diff in diffs.items()})


def claimed(design: str, adjusted: dict[str, float]) -> bool:
    """A difference the report may claim: its Holm-adjusted p is below `LEVEL`."""
    return adjusted.get(design, math.nan) < LEVEL


def summary(
    main: list[dict[str, Any]],
    designs: list[str],
    seeds: list[int],
    chosen: dict[str, float],
    costs: dict[str, float],
    steps: int,
    compared: tuple[dict[str, PairedDifference], dict[str, float]],
    spreads: dict[str, tuple[float, float]] | None = None,
) -> list[dict[str, Any]]:
    diffs, adjusted = compared
    base_runs = by_design(main, "pre", seeds)
    rows = []
    for design in designs:
        runs = by_design(main, design, seeds)
        mean, std = mean_and_sample_std([scored(r) for r in runs])
        failed = sum(r["diverged at"] != "no" for r in runs)
        d = diffs.get(design)
        speedups = [effective_speedup(r, b, costs[design]) for r, b in zip(runs, base_runs, strict=True)]
        rows.append(
            {
                "design": design,
                "lr": f"{chosen[design]:g}",
                "test bits/byte, mean ± sd": f"{mean:.3f} ± {std:.3f}",
                "failed": f"{failed}/{len(runs)}",
                "vs pre-norm [95% CI]": "—" if d is None else str(d) + ("*" if claimed(design, adjusted) else ""),
                "p (Holm)": "—" if d is None else f"{d.p:.3g} ({adjusted[design]:.3g})",
                "steps to target": steps_to_target(runs, steps),
                "time/step vs pre [rounds]": f"{costs[design]:.2f}×"
                + (f" [{spreads[design][0]:.2f}, {spreads[design][1]:.2f}]" if spreads and design != "pre" else ""),
                "params vs pre": f"{runs[0]['params'] / base_runs[0]['params']:.3f}×",
                "effective speed-up": "1.00×" if design == "pre" else str(median_speedup(speedups)),
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
            cell = "" if run is None else "diverged" if run["diverged at"] != "no" else f"{run[VAL]:.3f}"
            row[f"lr {rate:.3g}"] = f"**{cell}**" if run is not None and rate == chosen[design] else cell
        edge = chosen[design] in (grids[design][0], grids[design][-1])
        row["bracketed"] = "no: at the grid's edge" if edge else "yes"
        rows.append(row)
    return rows


def papers_table(
    designs: list[str], compared: tuple[dict[str, PairedDifference], dict[str, float]]
) -> list[dict[str, Any]]:
    diffs, adjusted = compared
    rows = []
    for design in designs:
        entry = DESIGNS.get_builder(design)
        d = diffs.get(design)
        if d is None:
            measured = "the baseline"
        else:
            verdict = "claimed" if claimed(design, adjusted) else "not distinguishable from pre-norm here"
            measured = f"{d} bits/byte: {verdict}"
        rows.append(
            {
                "design": design,
                "paper": entry.paper,
                "what the paper reports": entry.reported,
                "what the arena measured (vs pre-norm)": measured,
            }
        )
    return rows


def power_law_projection(main: list[dict[str, Any]], seeds: list[int], bits: float) -> str:
    """Where pre-norm's validation curve, extended as the power law bits ∝ steps^-c through the first and last
    points of its second half, reaches `bits`: the steps it would need (a projection, said as one)."""
    curve = validation_curve(by_design(main, "pre", seeds)[0])[1:]
    tail = curve[len(curve) // 2 :]
    if len(tail) < 2 or tail[-1][1] <= bits:
        return ""
    (s0, b0), (s1, b1) = tail[0], tail[-1]
    slope = (math.log(b1) - math.log(b0)) / (math.log(s1) - math.log(s0))  # bits ~ steps^slope over the tail
    if slope >= 0:
        return "Pre-norm's validation curve had stopped falling: no projection."
    needed = s1 * (bits / b1) ** (1 / slope)
    return (
        f"Pre-norm's validation curve (seed {seeds[0]}), extended as a power law of the steps fitted to its second "
        f"half, would reach {bits:.3f} bits per byte after about {needed:,.0f} steps ({needed / s1:.1f}× this budget)."
    )


def plot_arena(
    main: list[dict[str, Any]],
    designs: list[str],
    seeds: list[int],
    references: dict[str, float],
    compared: tuple[dict[str, PairedDifference], dict[str, float]],
    out: Path,
) -> dict[str, Path]:
    plt = pyplot()
    cmap = plt.get_cmap("tab10" if len(designs) <= 10 else "tab20")
    colors = {d: cmap(i % cmap.N) for i, d in enumerate(designs)}
    figs = {}
    fig, ax = plt.subplots(figsize=(8, 5))
    for design in designs:
        run = by_design(main, design, seeds)[0]
        ax.plot(smooth(run["_losses"], 20), color=colors[design], label=design)
    ax.set(title=f"training loss, seed {seeds[0]}", xlabel="step", ylabel="nats per byte")
    ax.legend(fontsize=8)
    figs["loss"] = save_figure(fig, out / "loss_curves.png")

    fig, ax = plt.subplots(figsize=(8, 5))
    for design in designs:
        for k, run in enumerate(by_design(main, design, seeds)):
            if run["_curve"]:
                ax.plot([c[1] for c in run["_curve"]], [c[2] for c in run["_curve"]], color=colors[design],
                        alpha=0.8 if k == 0 else 0.3, label=design if k == 0 else None)  # fmt: skip
    top = max((c[2] for r in main for c in r["_curve"][1:]), default=FAILED_BITS)
    for k, (name, bits) in enumerate(references.items()):
        if bits < top:
            ax.axhline(bits, color="gray", ls="--", lw=1)
            ax.text(k / 6, bits, f" {name}", color="gray", fontsize=8, va="bottom", transform=ax.get_yaxis_transform())
    ax.set(title="validation bits per byte against training time (every seed)", xlabel="training seconds",
           ylabel="validation bits per byte")  # fmt: skip
    ax.legend(fontsize=8)
    figs["wall-clock"] = save_figure(fig, out / "wall_clock.png")

    fig, ax = plt.subplots(figsize=(8, 0.45 * len(designs) + 2))
    base = [scored(r) for r in by_design(main, "pre", seeds)]
    diffs, adjusted = compared
    for i, design in enumerate(designs):
        bits = [scored(r) for r in by_design(main, design, seeds)]
        ax.scatter(bits, [i] * len(bits), color=colors[design], alpha=0.6)
        d = diffs.get(design)
        if d is not None and math.isfinite(d.low):
            pre_mean = sum(base) / len(base)
            ax.errorbar(pre_mean + d.mean, i, xerr=[[d.mean - d.low], [d.high - d.mean]], fmt="o",
                        color="k" if claimed(design, adjusted) else "gray", capsize=3)  # fmt: skip
    right = max(scored(r) for r in main) + 0.3
    for k, (name, bits) in enumerate(references.items()):
        if bits < right:
            ax.axvline(bits, color="gray", ls="--", lw=1)
            ax.text(bits, len(designs) - 0.6 + 0.25 * (k % 3), f" {name}", color="gray", fontsize=8)
    ax.set_yticks(range(len(designs)), designs)
    ax.set_xlabel("test bits per byte (dots: seeds; pre-norm's mean + the paired difference, 95% CI: black if claimed)")
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
    costs: dict[str, float],
    spreads: dict[str, tuple[float, float]],
    throughput: dict[str, Any],
    data: CharTextDataModule,
    settings: dict[str, Any],
) -> Path:
    s = settings
    compared = differences(main, designs, seeds)  # one family of comparisons for every table and figure
    val_bytes, test_bytes = (sum(len(b) for b in blocks) for blocks in (data.val_blocks, data.test_blocks))
    intro = (
        f"{model_text(s)}, {s['block_size']} bytes of context, "
        f"batches of {s['batch_size']}, {s['steps']} steps of AdamW (betas 0.9, 0.95) with {s['warmup']:.0%} "
        "linear warm-up and cosine decay to 10%, weight decay 0.1 on weight matrices only "
        "(`residual_kit.optim`: no norm, bias, scalar or connection weight decays), gradient clipping 1.0; "
        f"seeds {seeds}. Text: {s['text_file'] or 'the standard-library corpus'} ({data.num_bytes:,} bytes, "
        f"SHA-256 {data.sha256}). Held out in blocks spread across it, alternating: {val_bytes:,} validation "
        f"bytes in {len(data.val_blocks)} blocks, which chose every learning rate and draw the validation curves, "
        f"and {test_bytes:,} test bytes in {len(data.test_blocks)} blocks, which no choice saw and every figure of "
        "the first table is read on. Each design at its own learning rate, the best on validation bytes of a "
        f"sweep at seed {seeds[0]} on a ×2 grid that brackets it (below). Differences are paired by seed: the "
        "mean of (design − pre-norm) over seeds with its 95% confidence interval and two-sided p (Student's t, "
        "sample standard deviation), the p-values adjusted by Holm's method over the "
        f"{len(designs) - 1} designs compared; * marks a difference whose adjusted p is below {LEVEL}, the only "
        "ones claimed (below 0: better than pre-norm). A diverged run is a failure: it scores "
        f"{FAILED_BITS:g} bits per byte (the uniform model) in every comparison. 'Steps to target' is the median "
        "over seeds of the steps until the smoothed training loss reaches "
        f"{s['target']} nats, a run that never did counted as never. 'Effective speed-up' charges a design for "
        "its cost: the steps pre-norm needs to reach the design's final validation loss, over the design's steps "
        "times its time per step against pre-norm's (measured in this run in 5 interleaved rounds, alone; the "
        "lowest and highest round in brackets), median over "
        "seeds; '>' where pre-norm never got there within its steps."
    )
    refs = [
        {
            "reference": f"{name}" + (f" counts (add-{REFERENCES[name][1]:g})" if REFERENCES[name][1] else ""),
            "test bits/byte": f"{bits:.3f}",
        }
        for name, bits in references.items()
    ]
    best_count = min(references, key=references.get)
    base_mean = mean_and_sample_std([scored(r) for r in by_design(main, "pre", seeds)])[0]
    standing = (
        f"Pre-norm ends at {base_mean:.3f} test bits per byte: {base_mean - references['trigram']:+.3f} against the "
        f"add-k trigram and {base_mean - references[best_count]:+.3f} against the best count model here "
        f"({best_count}). " + power_law_projection(main, seeds, references["trigram"])
    )
    tables = [
        (
            "Designs against pre-norm (test bits per byte)",
            markdown_table(summary(main, designs, seeds, chosen, costs, s["steps"], compared, spreads)),
        ),
        ("Count models on the same test bytes", markdown_table(refs) + "\n\n" + standing),
        (
            f"Learning-rate sweep (validation bits per byte, seed {seeds[0]}; the chosen rate in bold)",
            markdown_table(sweep_table(swept, designs, grids, chosen, seeds[0])),
        ),
        ("What each paper reports, and what the arena measured", markdown_table(papers_table(designs, compared))),
        ("Throughput", throughput_text(throughput)),
    ]
    caveat = (
        "The arena compares designs on one small model, one text and a budget of minutes: a difference it claims is "
        "real for this setting and these seeds, and says nothing by itself about the scales the papers report on. "
        "A difference without * cannot be told from 0 here once the number of comparisons is counted. The learning "
        f"rate of each design was chosen on seed {seeds[0]}'s validation bytes, and that run is one of the seeds "
        "compared; the test bytes played no part in any choice."
    )
    tables.append(("What the arena can and cannot say", caveat))
    figs = plot_arena(main, designs, seeds, references, compared, folder)
    family = s.get("family", "gpt")
    title = "Residual arena" + ("" if family == "gpt" else f": the {family.upper()} family")
    return write_report(folder, title, intro, tables, figs)


__all__ = ["LEVEL", "claimed", "differences", "papers_table", "summary", "sweep_table", "write_arena_report"]
