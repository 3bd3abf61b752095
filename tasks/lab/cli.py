"""`python -m tasks.lab depth|variants|arena|stability`: the lab's experiments as subcommands.

python -m tasks.lab depth                                # plain vs residual ResNet-8/20/56 on digits
python -m tasks.lab depth --family lstm --depths '[2, 4, 8]'
python -m tasks.lab variants --depth 20 --seeds '[0, 1, 2]'
python -m tasks.lab arena                                # every residual design on one GPT, paired over seeds
python -m tasks.lab arena --family lstm                  # the same on a 6-layer LSTM language model
python -m tasks.lab stability                            # stream RMS, gradients and mixing gains at 8-64 layers
python -m tasks.lab depth --print_config > lab.yaml     # then: python -m tasks.lab depth --config lab.yaml

Each writes `report.md` (tables and linked figures), `results.csv` or result files and PNGs into `--out`;
a run that diverges is reported with its step and the sweep goes on; a killed sweep goes on from its
finished runs (`--resume false` retrains).
"""

from __future__ import annotations

from typing import Any

from tasks.core.cli import quiet_lightning


def cli_main(args: list[str] | None = None) -> Any:
    from jsonargparse import CLI

    from tasks.lab.arena.run import arena
    from tasks.lab.arena.stability import stability
    from tasks.lab.depth import depth
    from tasks.lab.variants import variants

    quiet_lightning()
    return CLI([depth, variants, arena, stability], args=args)


__all__ = ["cli_main"]
