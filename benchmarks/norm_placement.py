"""Norm placement at depth: the same 12-layer GPT, learning rate and budget, no warm-up, five placements.

    python -m benchmarks.norm_placement [--layers 12] [--steps 400] [--lr 2e-3] [--placements post pre ...]

Trains `tasks.transformer` once per placement on 3-digit addition (same seed, same data) and prints a
Markdown table: final training loss (mean of the last 50 logged steps), held-out exact match and
token accuracy, and whether the loss went non-finite.
"""

from __future__ import annotations

import argparse
import csv
import math
import tempfile
from pathlib import Path

from tasks.transformer import cli_main

# the placements of the GPT, and ReZero (no norm, a zero-initialised branch scale)
DESIGNS: dict[str, list[str]] = {
    **{p: [f"--model.net.placement={p}"] for p in ("post", "pre", "sandwich", "deepnorm")},
    "rezero": ["--model.net.placement=null", "--model.net.scale=rezero"],
}


def run(placement: str, args: argparse.Namespace, root: Path) -> dict[str, float | str]:
    cli = cli_main(
        [
            "fit",
            *DESIGNS[placement],
            f"--model.net.layers={args.layers}",
            f"--model.lr={args.lr}",
            "--model.warmup_steps=0",
            f"--trainer.max_steps={args.steps}",
            f"--trainer.val_check_interval={args.steps}",
            "--trainer.log_every_n_steps=10",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={root / placement}",
            "--trainer.enable_checkpointing=false",
            "--test_after_fit=true",
        ]
    )
    rows = list(csv.DictReader(open(Path(cli.trainer.log_dir) / "metrics.csv")))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    tail = losses[-5:]
    m = cli.trainer.callback_metrics
    final = sum(tail) / len(tail) if tail else math.nan
    return {
        "placement": placement,
        "final train loss": final,
        "test exact match": float(m.get("test/exact", math.nan)),
        "test token acc": float(m.get("test/token_acc", math.nan)),
        "diverged": "yes" if not all(math.isfinite(v) for v in losses) else "no",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--placements", nargs="+", default=list(DESIGNS), choices=list(DESIGNS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [run(p, args, Path(tmp)) for p in args.placements]
    print(f"\n{args.layers} layers, width 128, lr {args.lr}, no warm-up, {args.steps} steps of batch 128, seed 42\n")
    print("| placement | final train loss | test exact match | test token acc | diverged |")
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['placement']} | {r['final train loss']:.3f} | {r['test exact match']:.3f} "
            f"| {r['test token acc']:.3f} | {r['diverged']} |"
        )


if __name__ == "__main__":
    main()
