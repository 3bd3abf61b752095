"""What every task shares: atomic file writes, the trainer defaults and the CLI's callbacks."""

from __future__ import annotations

import csv
import inspect
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from jsonargparse import lazy_instance
from pytorch_lightning.callbacks import Callback, LearningRateMonitor, ModelCheckpoint, ProgressBar, RichProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import CSVLogger

from residual_kit.plotting import save_figure
from tasks.data.reproducible import seed_epoch


def atomic_path(path: str | Path) -> tuple[Path, Path]:
    """A temporary sibling of `path` to write to, then `os.replace` it: a killed run leaves no torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the final file should read like any other
    return Path(tmp), path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write a CSV atomically."""
    tmp, path = atomic_path(path)
    try:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def output_dir(trainer: pl.Trainer) -> Path:
    """Where a run's pictures and tables go: the logger's version folder, else the root dir.

    Reads the logger, not `trainer.log_dir`: that one is a collective under DDP and would hang a rank-0-only
    writer.
    """
    logger = trainer.logger
    log_dir = getattr(logger, "log_dir", None) or (logger.save_dir if logger is not None else None)
    return Path(log_dir or trainer.default_root_dir)


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or gradient."""


class DivergenceGuard(Callback):
    """Stop a run at the first non-finite loss or gradient, naming the step, the last finite loss and the fix.

    It raises instead of setting `should_stop`, so no checkpoint of the broken weights is written: the
    last good `last.ckpt` (and the best one) stay as they were.

    Args:
        check_gradients: also check the gradient norm after each backward (one reduction per step).
    """

    def __init__(self, check_gradients: bool = True) -> None:
        self.check_gradients = check_gradients
        self.last_finite: float | None = None

    def _fail(self, trainer: pl.Trainer, what: str) -> None:
        last = f"{self.last_finite:.4g}" if self.last_finite is not None else "none yet"
        raise DivergenceError(
            f"{what} at step {trainer.global_step} (epoch {trainer.current_epoch}); last finite loss: {last}. "
            "Likely fixes: a lower learning rate (--model.lr), a warm-up, gradient clipping "
            "(--trainer.gradient_clip_val=1.0) or pre-norm (--model.placement=pre). Checkpoints of earlier "
            "steps are untouched; resume from one with --ckpt_path."
        )

    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.check_gradients:
            return
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        if grads and not torch.isfinite(torch.stack([g.detach().float().norm() for g in grads]).sum()):
            self._fail(trainer, "non-finite gradient")

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, i: int) -> None:
        check_finite_batch(batch, f"training batch {i} of epoch {trainer.current_epoch}")

    def on_validation_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, i: int, j: int = 0) -> None:
        check_finite_batch(batch, f"validation batch {i}")

    def on_test_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, i: int, j: int = 0) -> None:
        check_finite_batch(batch, f"test batch {i}")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, i: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        values = [loss] if isinstance(loss, torch.Tensor) else []
        if not values:  # manual optimisation returns nothing: read the logged training losses
            values = [v for k, v in trainer.callback_metrics.items() if k.startswith("train/") and "loss" in k]
        for value in values:
            value = float(value)
            if not math.isfinite(value):
                self._fail(trainer, f"non-finite loss ({value})")
            self.last_finite = value


def check_finite_batch(batch: Any, where: str) -> None:
    """Refuse a batch with NaN or infinite inputs before it reaches the weights."""
    tensors = [batch] if isinstance(batch, torch.Tensor) else batch if isinstance(batch, (list, tuple)) else []
    for k, t in enumerate(tensors):
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not torch.isfinite(t).all():
            bad = int((~torch.isfinite(t)).sum())
            raise ValueError(
                f"{where} holds {bad} non-finite input values (tensor {k} of the batch, shape {tuple(t.shape)}): "
                "the data has NaN or inf in it. Check the data files (a corrupt file?) and any custom "
                "normalisation; nothing was trained on this batch."
            )


class ReproducibleEpochs(Callback):
    """Seed every RNG at the start of each epoch from (seed, epoch, rank) (see `tasks.data.reproducible`).

    A run resumed from an end-of-epoch checkpoint then replays exactly the epochs a straight run would:
    the same shuffle, augmentation, noise and dropout. The checkpoint carries which epoch comes next; a
    resumed run seeds at `on_fit_start`, because Lightning builds the first data iterator of a run (and
    forks its workers) before `on_train_epoch_start`.
    """

    def __init__(self) -> None:
        self.next_epoch = 0  # the epoch the next `on_train_epoch_start` begins
        self._seeded: int | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"next_epoch": self.next_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.next_epoch = state_dict["next_epoch"]

    def _seed(self, trainer: pl.Trainer) -> None:
        seed_epoch(self.next_epoch, trainer.global_rank)
        self._seeded = self.next_epoch

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._seed(trainer)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._seeded != self.next_epoch:
            self._seed(trainer)
        self.next_epoch += 1


def find_last_checkpoint(*folders: str | Path) -> Path:
    """The newest `last*.ckpt` in the given folders or their `version_*/checkpoints` subfolders."""
    found: list[Path] = []
    for folder in map(Path, folders):
        found += [*folder.glob("last*.ckpt"), *folder.glob("version_*/checkpoints/last*.ckpt")]
    if not found:
        where = " or ".join(str(Path(f) / "version_*" / "checkpoints") for f in folders)
        raise FileNotFoundError(
            f"--ckpt_path last: no last.ckpt under {where}. Train first with `fit`, run from the folder that "
            "holds runs/, or pass the path of a .ckpt file."
        )
    return max(found, key=lambda p: p.stat().st_mtime)


def check_checkpoint(path: str | Path, model: torch.nn.Module, task: str) -> None:
    """Refuse a checkpoint that is missing, unreadable, or written for another model, before anything runs."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist: pass the path of a .ckpt that `fit` wrote")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ValueError(f"checkpoint {path} cannot be read (truncated or not a checkpoint): {err}") from err
    if not isinstance(state, dict) or "state_dict" not in state:
        raise ValueError(f"{path} is not a Lightning checkpoint (no state_dict): pass a .ckpt that `fit` wrote")
    theirs, ours = state["state_dict"], model.state_dict()
    missing = [k for k in ours if k not in theirs]
    if len(missing) == len(ours) or len([k for k in theirs if k not in ours]) == len(theirs):
        raise ValueError(
            f"{path} is not a checkpoint of {type(model).__name__} (tasks.{task}): none of its weights match "
            f"(e.g. it has {next(iter(theirs), 'nothing')!r}). Pass a checkpoint written by "
            f"`python -m tasks.{task} fit`."
        )
    for key, value in ours.items():
        if key in theirs and theirs[key].shape != value.shape:
            raise ValueError(
                f"{path} was trained with other model options: {key} is {tuple(theirs[key].shape)} there and "
                f"{tuple(value.shape)} here. Pass the config it was trained with (the config.yaml in its run "
                "folder: --config <run>/config.yaml)."
            )
    if missing:
        raise ValueError(
            f"{path} lacks {len(missing)} weights of {type(model).__name__} (e.g. {missing[0]!r}): it was trained "
            "with other model options; pass the config.yaml of its run with --config."
        )


def check_hyperparameters(path: str | Path, model_class: type, task: str) -> None:
    """Refuse a checkpoint that cannot be read or whose hyperparameters `model_class` does not take."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"checkpoint {path} cannot be read (truncated or not a checkpoint): {err}") from err
    hparams = state.get("hyper_parameters", {}) if isinstance(state, dict) else {}
    if "_class_path" in hparams:  # subclass mode: the parser checks the class itself
        return
    accepted = set(inspect.signature(model_class).parameters)
    foreign = sorted(k for k in hparams if not k.startswith("_") and k not in accepted)
    if foreign:
        raise ValueError(
            f"{path} is not a checkpoint of {model_class.__name__} (tasks.{task}): it was saved with "
            f"{', '.join(foreign[:4])}, which {model_class.__name__} does not take. Pass a checkpoint written by "
            f"`python -m tasks.{task} fit`."
        )


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


def trainer_defaults(name: str, max_epochs: int, **overrides: Any) -> dict[str, Any]:
    """Defaults that give a good run with no config: auto accelerator, rich progress, CSV logs under runs/."""
    return {
        "accelerator": "auto",
        "max_epochs": max_epochs,
        "logger": lazy_instance(CSVLogger, save_dir="runs", name=name),
        # persistent callbacks: always present, whatever the config adds
        "callbacks": [
            RichProgressBar(leave=True),
            LearningRateMonitor(logging_interval="epoch"),
            DivergenceGuard(),
            ReproducibleEpochs(),
        ],
        **overrides,
    }


def last_checkpoint(dirpath: str | Path | None = None) -> ModelCheckpoint:
    """`last.ckpt`, rewritten at every validation (or epoch end): what `fit --ckpt_path last` resumes.

    Its own callback because since Lightning 2.6 `save_last=True` rewrites last.ckpt only when a top-k
    checkpoint is saved in the same step, so a run whose metric stopped improving would resume epochs back.
    """
    return ModelCheckpoint(dirpath=dirpath, filename="last", monitor=None, save_top_k=1, enable_version_counter=False)


class TaskCLI(LightningCLI):
    """LightningCLI shared by every task: best and last checkpoints on `monitor`, and `test` after `fit`.

    Subclasses set `task` (their module's name), `monitor`, `mode` and `checkpoint_filename`, and add their
    own links and writers in `add_task_arguments`.
    """

    task: str = "resnet"
    monitor: str = "val/loss"
    mode: str = "min"
    checkpoint_filename: str = "best-epoch{epoch:02d}"
    ddp_find_unused: bool = False  # let `--trainer.strategy=ddp` mean DDP that allows unused parameters

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": self.monitor,
                "checkpoint.mode": self.mode,
                "checkpoint.save_last": False,  # last.ckpt comes from `last_checkpoint`, see there
                "checkpoint.filename": self.checkpoint_filename,
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.add_argument(
            "--test_after_fit", type=bool, default=True, help="run `test` on the best checkpoint after `fit`"
        )
        self.add_task_arguments(parser)

    def add_task_arguments(self, parser: LightningArgumentParser) -> None:
        """Links and writers of one task."""

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        # the rich bar, the lr monitor and the checkpoint are always-on callbacks; `enable_progress_bar=false`,
        # `logger=false` and `enable_checkpointing=false` must still work, so drop them instead of letting
        # Trainer refuse
        config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        extra = [self._get(self.config_init, key) for key in self._parser(self.subcommand).callback_keys]
        dropped = (ProgressBar,) if config.get("enable_progress_bar") is False else ()
        dropped += (LearningRateMonitor,) if config.get("logger") is False else ()
        if dropped:
            callbacks = self.trainer_defaults.get("callbacks", [])
            self.trainer_defaults["callbacks"] = [c for c in callbacks if not isinstance(c, dropped)]
        if self.ddp_find_unused and config.get("strategy") == "ddp":
            config["strategy"] = "ddp_find_unused_parameters_true"
        if config.get("enable_checkpointing") is False:
            extra = [c for c in extra if not isinstance(c, ModelCheckpoint)]
        else:
            best = next((c for c in extra if isinstance(c, ModelCheckpoint)), None)
            extra.append(last_checkpoint(best.dirpath if best else None))
        return self._instantiate_trainer(config, extra)

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        # LightningCLI reads a checkpoint's hyperparameters into the config next; a checkpoint that is
        # unreadable or of another task must fail here with one line, not a traceback or a parser error
        subcommand = self.config.get("subcommand")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if path and Path(path).is_file():
            check_hyperparameters(path, self._model_class, self.task)

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
            path = find_last_checkpoint(*(folders or [Path("runs") / self.task]))
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
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best" if best else None)


__all__ = [
    "DivergenceError",
    "DivergenceGuard",
    "ReproducibleEpochs",
    "TaskCLI",
    "atomic_path",
    "check_checkpoint",
    "check_finite_batch",
    "check_hyperparameters",
    "find_last_checkpoint",
    "last_checkpoint",
    "output_dir",
    "run",
    "save_figure",
    "trainer_defaults",
    "write_csv",
]
