"""What every lab experiment runs on: one step log, one run cache, one pool of worker processes.

A run is a top-level function of its settings (a dict) that returns its result (a dict of numbers and lists).
`run_all` keeps each result in `<folder>/<name>/result.json` with the settings that made it, reads back finished
runs of the same settings (a killed sweep goes on where it stopped), and trains the rest, one per worker process.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from tasks.core.cli import quiet_lightning
from tasks.core.outputs import atomic_write

Run = Callable[[dict[str, Any]], dict[str, Any]]


class StepLog(pl.Callback):
    """The training loss and the wall time of every step."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.seconds: list[float] = []

    def on_train_batch_start(self, *args: Any) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, *args: Any) -> None:
        self.seconds.append(time.perf_counter() - self._start)
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss))


def finished_run(saved: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The result kept in `saved` if it was made with these settings, else None."""
    if not saved.is_file():
        return None
    try:
        kept = json.loads(saved.read_text())
    except json.JSONDecodeError:
        return None
    return kept["result"] if kept.get("settings") == json.loads(json.dumps(settings)) else None


def save_run(saved: Path, settings: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    with atomic_write(saved) as tmp:
        tmp.write_text(json.dumps({"settings": settings, "result": result}))
    return result


def cpu_cores() -> int:
    """The CPU cores this process may run on (all of them where the OS does not say, as on macOS)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_all(
    todo: dict[str, dict[str, Any]],
    run: Run,
    folder: Path,
    workers: int | None = 1,
    resume: bool = True,
    cost: Callable[[dict[str, Any]], float] = lambda settings: 1.0,
    describe: Callable[[str, dict[str, Any]], str] = lambda name, result: name,
) -> dict[str, dict[str, Any]]:
    """Every run's result by name: finished ones read back (with `resume`), the rest trained by `workers` processes
    at once (None: one per CPU core, each on one thread; one with a GPU), the costliest first, each kept as it ends.

    `run` must be a top-level function (worker processes import it); `describe` says a result in one line.
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers={workers}: give at least 1, or leave it out for one per CPU core")
    results = {n: r for n, s in todo.items() if resume and (r := finished_run(folder / n / "result.json", s))}
    if results:
        print(f"reusing {len(results)} finished runs in {folder} (--resume false trains them again)")
    missing = sorted((n for n in todo if n not in results), key=lambda n: -cost(todo[n]))
    gpu, cores = torch.cuda.is_available(), cpu_cores()
    workers = workers or (1 if gpu else cores)
    threads = None if gpu and workers == 1 else max(1, cores // workers)
    start, done_before = time.perf_counter(), len(results)

    def done(name: str, result: dict[str, Any]) -> None:
        results[name] = result
        k = len(results) - done_before
        print(f"[{k}/{len(missing)}] {describe(name, result)} ({time.perf_counter() - start:.0f} s)", flush=True)

    if workers == 1 or len(missing) <= 1:
        for name in missing:
            done(name, run_and_save(run, folder / name / "result.json", todo[name], threads))
        return results
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=quiet_worker) as pool:
        futures = {pool.submit(run_and_save, run, folder / n / "result.json", todo[n], threads): n for n in missing}
        try:
            for future in as_completed(futures):
                done(futures[future], future.result())
        except BaseException:  # a failed run (or Ctrl-C) ends the sweep now, not after the queued runs
            pool.shutdown(cancel_futures=True)
            raise
    return results


def quiet_worker() -> None:
    """A worker prints only its warnings: the pool reports each run as it ends. A lab run scores its model itself,
    after training, so Lightning's note that nothing validates during `fit` is not one."""
    quiet_lightning()
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*val_dataloader.* but have no .*validation_step.*")


def run_and_save(run: Run, saved: Path, settings: dict[str, Any], threads: int | None) -> dict[str, Any]:
    """One run in this process, on `threads` CPU threads (None: torch's default), kept in `saved`."""
    if threads is not None:
        torch.set_num_threads(threads)
    return save_run(saved, settings, run(settings))


__all__ = ["StepLog", "cpu_cores", "finished_run", "run_all", "run_and_save", "save_run"]
