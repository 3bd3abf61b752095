"""Depth and stability, cheaply: `python -m tasks.lab stability`.

For each design and depth (8 to 64 layers): the RMS of the residual stream after every layer and the gradient norm
that reaches it, at initialisation and after a short training, measured the same way in every design (what the
design hands to the next layer, `residual_kit.stack.Traced`: the stream; hyper-connections' sum of streams); and
for hyper-connections and mHC the gain of the composite mixing A_r^T ... A_r^T across depth, the largest absolute
row sum (forward) and column sum (backward) over tokens, the figure the mHC paper argues from.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from tasks.core.callbacks import fit_or_diverged
from tasks.core.trainer import lab_trainer
from tasks.lab.arena.designs import DESIGNS
from tasks.lab.arena.train import CharLM, seeded_run
from tasks.lab.report import markdown_table, write_report
from tasks.lab.runner import run_all

STABILITY_DESIGNS = ["pre", "post", "deepnorm", "hyper", "mhc"]


def composite_gains(mixes: list[torch.Tensor]) -> tuple[list[float], list[float]]:
    """The forward and backward gains of C_k = A_r(k)^T ... A_r(1)^T after each sub-layer k: the largest absolute
    row sum and column sum of C_k, the largest over tokens."""
    forward, backward, composite = [], [], None
    for mix in mixes:  # (..., n, n): A_r, applied as A_r^T H
        step = mix.transpose(-1, -2).detach().double()
        composite = step if composite is None else step @ composite
        forward.append(composite.abs().sum(-1).amax().item())
        backward.append(composite.abs().sum(-2).amax().item())
    return forward, backward


def measure(model: CharLM, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, list[float]]:
    """One forward and backward on `batch`: per layer, RMS of the stream and norm of its gradient; the gains."""
    stack = model.net.blocks
    stack.traced, stack.traced_mixes = [], []
    try:
        loss = model.loss(batch)
        for state in stack.traced:
            state.retain_grad()
        loss.backward()
        rms = [s.detach().pow(2).mean().sqrt().item() for s in stack.traced]
        grad = [s.grad.norm().item() if s.grad is not None else math.nan for s in stack.traced]
        forward, backward = composite_gains(stack.traced_mixes)
    finally:
        stack.traced, stack.traced_mixes = None, None
        model.zero_grad(set_to_none=True)
    return {"rms": rms, "grad": grad, "gain_forward": forward, "gain_backward": backward}


def probe_design(s: dict[str, Any]) -> dict[str, Any]:
    """Measure one design at one depth at initialisation, train it `steps` steps, measure again."""
    data, model = seeded_run(s)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    at_init = measure(model, batch)
    trainer = lab_trainer(None, max_epochs=1, num_sanity_val_steps=0, limit_val_batches=0, gradient_clip_val=1.0)
    diverged = fit_or_diverged(trainer, model, data)
    trained = measure(model.train(), batch) if diverged is None else {}
    return {
        "design": s["design"],
        "depth": s["depth"],
        "diverged at": "no" if diverged is None else diverged,
        **{f"{k}_init": v for k, v in at_init.items()},
        **{f"{k}_trained": v for k, v in trained.items()},
    }


def stability(
    designs: list[str] | None = None,
    depths: list[int] | None = None,
    steps: int = 30,
    dim: int = 64,
    heads: int = 4,
    block_size: int = 64,
    batch_size: int = 8,
    lr: float = 3e-3,
    seed: int = 0,
    text_file: str | None = None,
    out: str = "runs/lab/stability",
    resume: bool = True,
    workers: int | None = None,
) -> Path:
    """Stream RMS, gradient norms and (hyper-connections, mHC) composite mixing gains against depth.

    Args:
        designs: names from `tasks.lab.arena.designs.DESIGNS`; default pre, post, deepnorm, hyper, mhc.
        depths: GPT layers; default 8, 16, 32, 64.
        steps: training steps between the two measurements.
        dim: width; heads: attention heads.
        block_size: bytes of context; batch_size: windows per step.
        lr: learning rate (with the arena's warm-up and decay).
        seed: the seed of every run.
        text_file: the text; default: the standard-library corpus.
        out: folder for report.md, the runs' results and the PNGs.
        resume: reuse finished runs of the same settings in `out`.
        workers: runs at once, each in its own process (default: one per CPU core).
    """
    designs, depths, folder = designs or STABILITY_DESIGNS, depths or [8, 16, 32, 64], Path(out)
    for d in designs:
        DESIGNS.check(d)
    todo = {
        f"{d}-L{depth}": dict(
            design=d,
            depth=depth,
            steps=steps,
            dim=dim,
            heads=heads,
            block_size=block_size,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            text_file=text_file,
        )
        for d in designs
        for depth in depths
    }
    results = run_all(todo, probe_design, folder / "runs", workers, resume, lambda s: s["depth"])
    rows = []
    for r in sorted(results.values(), key=lambda r: (designs.index(r["design"]), r["depth"])):
        row = {"design": r["design"], "layers": r["depth"], "diverged at": r["diverged at"]}
        for when in ("init", "trained"):
            rms, grad = r.get(f"rms_{when}"), r.get(f"grad_{when}")
            row[f"last-layer RMS, {when}"] = f"{rms[-1]:.3g}" if rms else "—"
            row[f"‖dL/dx‖ first / last layer, {when}"] = f"{grad[0] / grad[-1]:.3g}" if grad else "—"
            gain = r.get(f"gain_forward_{when}")
            row[f"max mixing gain, {when}"] = f"{max(gain):.3g}" if gain else "—"
        rows.append(row)
    figs = plot_stability(list(results.values()), designs, max(depths), folder)
    intro = (
        f"GPT width {dim}, {heads} heads, {block_size} bytes of context, batches of {batch_size}; measured on one "
        f"fixed batch at initialisation and after {steps} steps at lr {lr:g} (seed {seed}). RMS and gradient norm "
        "are of what each design hands to the next layer; the mixing gain is of hyper-connections' and mHC's "
        "composite stream mixing (1 keeps the streams' scale)."
    )
    path = write_report(folder, "Depth and stability", intro, [("By design and depth", markdown_table(rows))], figs)
    print(f"report: {path}")
    return path


def plot_stability(results: list[dict[str, Any]], designs: list[str], depth: int, out: Path) -> dict[str, Path]:
    from tasks.core.outputs import pyplot, save_figure

    plt = pyplot()
    colors = dict(zip(designs, plt.get_cmap("tab10").colors, strict=False))
    deepest = [r for r in results if r["depth"] == depth]
    figs = {}
    for key, title in (("rms", "RMS of the residual stream"), ("grad", "‖dL/dstream‖")):
        fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
        for ax, when in zip(axes, ("init", "trained"), strict=True):
            for r in deepest:
                if r.get(f"{key}_{when}"):
                    ax.plot(
                        range(1, len(r[f"{key}_{when}"]) + 1),
                        r[f"{key}_{when}"],
                        color=colors[r["design"]],
                        label=r["design"],
                    )
            ax.set(title=f"{title}, {depth} layers, {when}", xlabel="layer", yscale="log")
            ax.legend(fontsize=8)
        figs[key] = save_figure(fig, out / f"stream_{key}.png")
    fig, ax = plt.subplots(figsize=(8, 4))
    for r in deepest:
        for when, style in (("init", "--"), ("trained", "-")):
            if r.get(f"gain_forward_{when}"):
                ax.plot(r[f"gain_forward_{when}"], style, color=colors[r["design"]], label=f"{r['design']}, {when}")
    ax.set(title=f"composite mixing gain (largest row sum), {depth} layers", xlabel="sub-layer", yscale="log")
    ax.legend(fontsize=8)
    figs["gain"] = save_figure(fig, out / "mixing_gain.png")
    return figs


__all__ = ["composite_gains", "measure", "stability"]
