"""What Lightning and our callbacks add to a training step: `tasks.resnet` as users run it, against a bare loop.

    python -m benchmarks.lightning_overhead [--steps 30] [--warmup 5] [--rounds 3] [--threads 2]

Three ways to run the same steps of the default ResNet-20 on the same batches of the embedded digits:
    bare loop        for x, y in loader: SGD step on cross-entropy (no Lightning)
    Trainer, bare    Trainer.fit with no logger, checkpoints, progress bar or callbacks
    tasks.resnet     `python -m tasks.resnet fit` as shipped: rich progress bar, CSV logger, learning-rate
                     monitor, divergence guard, reproducible epochs, checkpoints
Seconds per step from the end of step `warmup` to the end of step `steps` (one epoch, so no validation
runs in between), in interleaved rounds; the ratio is to the bare loop, with its min-max over rounds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from tasks.data.images import ImageDataModule
from tasks.resnet import ImageClassifier, cli_main


class StepClock(pl.Callback):
    """Seconds per training step between the end of step `warmup` and the end of the last step."""

    def __init__(self, warmup: int = 5) -> None:
        self.warmup, self.start, self.end, self.steps = warmup, 0.0, 0.0, 0

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()
        elif trainer.global_step > self.warmup:
            self.end, self.steps = time.perf_counter(), trainer.global_step - self.warmup

    @property
    def per_step(self) -> float:
        return (self.end - self.start) / max(1, self.steps)


def bare_loop(steps: int, warmup: int) -> float:
    pl.seed_everything(42, verbose=False)
    data = ImageDataModule()
    data.setup("fit")
    module = ImageClassifier()
    module.configure_model()
    net = module.net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    start = 0.0
    for step, (x, y) in enumerate(data.train_dataloader(), start=1):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(module(x), y)
        loss.backward()
        opt.step()
        loss.item()  # Lightning reads the loss for its progress bar each step
        if step == warmup:
            start = time.perf_counter()
        if step == steps:
            return (time.perf_counter() - start) / (steps - warmup)
    raise ValueError(f"one epoch has fewer than {steps} steps")


def trainer_bare(steps: int, warmup: int) -> float:
    pl.seed_everything(42, verbose=False)
    clock = StepClock(warmup)
    trainer = pl.Trainer(
        max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[clock], accelerator="auto", num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(ImageClassifier(), datamodule=ImageDataModule())
    return clock.per_step


def task_cli(steps: int, warmup: int) -> float:
    with tempfile.TemporaryDirectory() as root:
        cli = cli_main(["fit", f"--trainer.max_steps={steps}", f"--trainer.default_root_dir={root}",
                        "--test_after_fit=false", "--trainer.num_sanity_val_steps=0",
                        "--trainer.callbacks+=benchmarks.lightning_overhead.StepClock",
                        f"--trainer.callbacks.warmup={warmup}"])  # fmt: skip
        return next(c for c in cli.trainer.callbacks if type(c).__name__ == "StepClock").per_step  # not __main__'s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = {"bare loop": bare_loop, "Trainer, bare": trainer_bare, "tasks.resnet": task_cli}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            times[name].append(run(args.steps, args.warmup))
    print(f"threads={torch.get_num_threads()}  steps {args.warmup}..{args.steps} of ResNet-20 on the embedded digits")
    for name, ts in times.items():
        ratios = [t / b for t, b in zip(ts, times["bare loop"], strict=True)]
        print(f"  {name:<16}{statistics.median(ts) * 1e3:8.1f} ms/step   ratio {statistics.median(ratios):.3f}  "
              f"spread [{min(ratios):.3f}, {max(ratios):.3f}]")  # fmt: skip


if __name__ == "__main__":
    main()
