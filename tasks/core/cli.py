"""`TaskCLI`: the LightningCLI every task uses; a task states its defaults as class attributes.

What it adds to LightningCLI: outputs under `--trainer.default_root_dir` (default `runs/`), best and last
checkpoints, `test` after `fit`, `--ckpt_path last`, a divergence guard and reproducible epochs that can be
switched off, a user's progress bar in place of ours, and one-line errors for old option names and for
LightningCLI's `--optimizer` (each task builds its own optimiser from `--model.*`).
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, LearningRateMonitor, ModelCheckpoint, ProgressBar, RichProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.plugins.io import CheckpointIO

from tasks.core.arguments import check_old_options, find_configs
from tasks.core.callbacks import DivergenceError
from tasks.core.checkpoints import (
    AtomicCheckpointIO,
    check_checkpoint,
    check_hyperparameters,
    find_last_checkpoint,
    last_checkpoint,
)
from tasks.core.curves import LearningCurves
from tasks.core.trainer import guard_callbacks


class _DropTip(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in str(record.msg)


def quiet_lightning() -> None:
    """Silence what a user cannot act on: Lightning's litlogger tip and its internal LeafSpec deprecation."""
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_DropTip())
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")


class TaskCLI(LightningCLI):
    """LightningCLI of one task. Subclasses set the class attributes; `cli_main` is `return XCLI(args)`.

    Attributes:
        task: the module name (`python -m tasks.<task>`), and the log folder under the root dir.
        model_class, datamodule_class: the LightningModule and LightningDataModule.
        max_epochs, trainer_overrides: trainer defaults beyond auto accelerator and `runs/` as root dir.
        monitor, mode, checkpoint_filename: what the best checkpoint is chosen by.
        links: (data argument, model argument) pairs, applied when both are built.
        writer: the prediction writer, configured as `--predictions.*`.
        divergence_hint: the task's own remedy, added to the divergence guard's message.
        ddp_find_unused: `--trainer.strategy=ddp` means DDP that allows unused parameters.
    """

    task: ClassVar[str]
    model_class: ClassVar[type[pl.LightningModule]]
    datamodule_class: ClassVar[type[pl.LightningDataModule]]
    max_epochs: ClassVar[int] = 10
    trainer_overrides: ClassVar[dict[str, Any]] = {}
    monitor: ClassVar[str] = "val/loss"
    mode: ClassVar[str] = "min"
    checkpoint_filename: ClassVar[str] = "best-epoch{epoch:02d}"
    links: ClassVar[tuple[tuple[str, str], ...]] = ()
    writer: ClassVar[type[Callback] | None] = None
    divergence_hint: ClassVar[str] = ""
    ddp_find_unused: ClassVar[bool] = False

    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        quiet_lightning()
        super().__init__(
            type(self).model_class,
            type(self).datamodule_class,
            trainer_defaults={
                "accelerator": "auto",
                "max_epochs": self.max_epochs,
                "default_root_dir": "runs",
                "logger": True,
                **self.trainer_overrides,
            },
            seed_everything_default=42,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            args=args,
            run=run,
        )

    def add_callback_arguments(self, parser: LightningArgumentParser, callback: type[Callback], key: str) -> None:
        """`--key.*` configure a callback the trainer gets (unless it is a checkpoint and checkpointing is off)."""
        parser.add_class_arguments(callback, key, fail_untyped=False, sub_configs=True)
        self.callback_groups = {*getattr(self, "callback_groups", ()), key}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        self.parsers = (*getattr(self, "parsers", ()), parser)  # one per subcommand; hparams become defaults of all
        self.add_callback_arguments(parser, ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": self.monitor,
                "checkpoint.mode": self.mode,
                "checkpoint.save_last": False,  # last.ckpt comes from `last_checkpoint`, see there
                "checkpoint.filename": self.checkpoint_filename,
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.add_argument("--test_after_fit", type=bool, default=True, help="test the best checkpoint after fit")
        parser.add_argument(
            "--divergence_guard", type=bool, default=True, help="stop at the first non-finite loss or gradient"
        )
        parser.add_argument(
            "--reproducible_epochs", type=bool, default=True, help="seed each epoch from (seed, epoch, rank)"
        )
        for source, target in self.links:
            parser.link_arguments(source, target, apply_on="instantiate")
        if self.writer is not None:
            self.add_callback_arguments(parser, self.writer, "predictions")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse `args` (the command line when None; LightningCLI's own would warn about args given beside
        sys.argv), then again over a checkpoint's hyperparameters as defaults (see `checkpoint_defaults`)."""
        args = find_configs(sys.argv[1:] if args is None else list(args))
        check_old_options(args, self.task)
        self.config = parser.parse_args(args)
        subcommand = self.config.get("subcommand")
        self.ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        defaults = self.checkpoint_defaults(self.ckpt_path)
        if defaults:
            for each in self.parsers:
                each.set_defaults(defaults)
            self.config = parser.parse_args(args)
        if subcommand:  # Lightning would merge the checkpoint's hyperparameters over what the user wrote
            self.config[subcommand].ckpt_path = None

    def instantiate_classes(self) -> None:
        """Put `--ckpt_path` back (see `parse_arguments`) whatever a task's `before_instantiate_classes` does."""
        if self.config.get("subcommand"):
            self.config[self.config.subcommand].ckpt_path = self.ckpt_path
        super().instantiate_classes()

    def checkpoint_defaults(self, path: str | None) -> dict[str, Any]:
        """A checkpoint's hyperparameters (the model's and its data module's) as defaults of `--model.*` and
        `--data.*`, so that what the user wrote (on the command line or in a `--config` file) overrides them:
        `test --ckpt_path X --model.sampling.truncation=2` samples with truncation, and `predict --ckpt_path X` of a
        text model reads its prompts as that text's bytes. A checkpoint that is unreadable, of an earlier version or
        of another task fails here with one line."""
        if not (path and Path(path).is_file()):
            return {}
        hparams, data = check_hyperparameters(path, self.model_class, self.task)
        taken = set(inspect.signature(self.datamodule_class).parameters)
        return {f"model.{k}": v for k, v in hparams.items()} | {f"data.{k}": v for k, v in data.items() if k in taken}

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        settings = self.config_init.get(str(self.subcommand), self.config_init)
        config = {**settings.get("trainer", {}), **kwargs}
        chosen = [settings[key] for key in sorted(getattr(self, "callback_groups", ())) if key in settings]
        if config.get("enable_checkpointing") is False:
            chosen = [c for c in chosen if not isinstance(c, ModelCheckpoint)]
        if config.get("logger") is True:
            config["logger"] = CSVLogger(save_dir=config["default_root_dir"], name=self.task)
        plugins = as_list(config.get("plugins"))
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            config["plugins"] = [*plugins, AtomicCheckpointIO()]
        if self.ddp_find_unused and config.get("strategy") == "ddp":
            config["strategy"] = "ddp_find_unused_parameters_true"
        given = as_list(config.get("callbacks"))
        config["callbacks"] = [*given, *chosen, *self._default_callbacks(config, settings, given, chosen)]
        return super().instantiate_trainer(**config)

    def _default_callbacks(
        self, config: dict[str, Any], settings: Any, given: list[Callback], chosen: list[Callback]
    ) -> list[Callback]:
        """Ours, less what the user switched off or replaced (`--trainer.callbacks+=TQDMProgressBar`)."""
        given = [*given, *chosen]
        ours: list[Callback] = []
        if config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in given):
            ours.append(RichProgressBar(leave=True))
        if config.get("logger") is not False:
            ours.append(LearningRateMonitor(logging_interval="epoch"))
        if self.subcommand == "fit" and not config.get("fast_dev_run"):
            ours.append(LearningCurves(self.monitor))
        ours += guard_callbacks(
            self.divergence_hint, settings.get("divergence_guard", True), settings.get("reproducible_epochs", True)
        )
        if config.get("enable_checkpointing") is not False:
            best = next((c for c in chosen if isinstance(c, ModelCheckpoint)), None)
            ours.append(last_checkpoint(best.dirpath if best else None))
        return ours

    def _check_ckpt_path(self) -> None:
        """`--ckpt_path last` finds the newest last.ckpt of this task (Lightning would look only in the new
        run's empty version folder and silently start afresh); any path is checked before anything runs."""
        config = self.config_init[self.subcommand]
        path = config.get("ckpt_path")
        if path in (None, "best", "hpc", "registry"):
            return
        if path == "last":
            folders = [d for d in (getattr(self.trainer.checkpoint_callback, "dirpath", None),) if d]
            logger = self.trainer.logger
            if logger is not None and logger.save_dir is not None:
                folders.append(Path(logger.save_dir) / (logger.name or ""))
            path = find_last_checkpoint(*(folders or [Path(self.trainer.default_root_dir) / self.task]))
            config["ckpt_path"] = str(path)
            print(f"resuming from {path}", file=sys.stderr)
        check_checkpoint(path, self.model, self.task)

    def before_fit(self) -> None:
        self._check_ckpt_path()

    def before_validate(self) -> None:
        self._check_ckpt_path()

    def before_test(self) -> None:
        self._check_ckpt_path()

    def before_predict(self) -> None:
        self._check_ckpt_path()

    def after_fit(self) -> None:
        if not self.config[self.subcommand].get("test_after_fit", False) or self.trainer.interrupted:
            return
        best = self.trainer.checkpoint_callback.best_model_path if self.trainer.checkpoint_callback else ""
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None)


def as_list(value: Any) -> list[Any]:
    """A trainer argument that takes one object or several (callbacks, plugins), as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def task_main(cli: type[TaskCLI], args: list[str] | None = None) -> Any:
    """A task's command line: LightningCLI's subcommands, and `export` (see `tasks.core.export`)."""
    args = sys.argv[1:] if args is None else list(args)
    if args[:1] == ["export"]:
        from tasks.core.export import export_cli

        return export_cli(cli.model_class, cli.task, args[1:])
    return cli(args)


USER_ERRORS: tuple[type[BaseException], ...] = (DivergenceError, FileNotFoundError, ValueError, TypeError)


def run(cli_main: Callable[..., Any]) -> None:
    """Entry point of `python -m tasks.<name>`: a user error prints one line naming it and exits with 1."""
    try:
        cli_main()
    except USER_ERRORS as err:
        if os.environ.get("RESIDUAL_KIT_TRACEBACK"):
            raise
        print(f"error: {err}\n(set RESIDUAL_KIT_TRACEBACK=1 for the full traceback)", file=sys.stderr)
        sys.exit(1)


__all__ = ["TaskCLI", "check_old_options", "quiet_lightning", "run", "task_main"]
