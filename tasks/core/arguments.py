"""What the user typed, before the parser reads it: shipped configs found by name, and one-line refusals of
LightningCLI's `--optimizer` and of option names that stopped working."""

from __future__ import annotations

from pathlib import Path

import yaml

from tasks.core.deprecations import check_renamed, dotted_keys


def check_old_options(args: list[str], task: str) -> None:
    """Refuse, in one line, LightningCLI's `--optimizer` and option names that stopped working (`RENAMED`).

    Looks at the command line and at every `--config` file it names (its sections, or those of the
    subcommand), before the parser would answer with a long usage text.
    """
    keys = []
    for arg in args:
        key = arg.split("=", 1)[0]
        if key.startswith(("--optimizer", "--lr_scheduler")):
            raise ValueError(
                f"{key} is not an option of residual-kit tasks: each task builds its optimiser and schedule from "
                f"its own options (see `python -m tasks.{task} fit --help`, under --model)."
            )
        if key.startswith("--"):
            keys.append(key.removeprefix("--"))
    check_renamed(task, keys)
    for _, path in _config_arguments(args):
        try:
            content = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError):
            continue  # the parser reports unreadable configs itself
        if isinstance(content, dict):
            keys = list(dotted_keys(content))
            check_renamed(task, keys + [k.split(".", 1)[1] for k in keys if "." in k], where=f"{path}: ")


CONFIGS = Path(__file__).resolve().parents[1] / "configs"
"""The shipped configs, installed with the package: `--config mnist_resnet20` finds `configs/mnist_resnet20.yaml`."""


def find_configs(args: list[str]) -> list[str]:
    """`--config NAME` (or `configs/NAME.yaml` outside a checkout) -> the shipped config of that name, where
    NAME is not a file here; every other argument as it was."""
    out = list(args)
    for i, value in _config_arguments(args):
        shipped = shipped_config(value)
        out[i] = shipped if args[i] == value else f"--config={shipped}"
    return out


def shipped_config(value: str) -> str:
    """`value` if it is a file here, else the shipped config named by it (with or without `.yaml`), else `value`."""
    if Path(value).is_file():
        return value
    name = Path(value).name
    return next((str(CONFIGS / n) for n in (name, f"{name}.yaml") if (CONFIGS / n).is_file()), value)


def _config_arguments(args: list[str]) -> list[tuple[int, str]]:
    """(position, file) of every config the arguments name: `--config F`, `-c F` or `--config=F`."""
    found = []
    for i, arg in enumerate(args):
        if arg in ("--config", "-c") and i + 1 < len(args):
            found.append((i + 1, args[i + 1]))
        elif arg.startswith("--config="):
            found.append((i, arg.split("=", 1)[1]))
    return found


__all__ = ["CONFIGS", "check_old_options", "find_configs", "shipped_config"]
