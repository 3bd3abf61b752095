"""The residual lab: what shortcuts change, measured and drawn: `python -m tasks.lab depth|variants|arena`."""

from tasks.lab.cli import cli_main

__all__ = ["cli_main"]
