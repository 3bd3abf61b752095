"""A small GPT on digit-sequence tasks: `python -m tasks.transformer fit` learns 3-digit addition.

python -m tasks.transformer fit                                        # 4 layers, width 128, pre-norm
python -m tasks.transformer fit --model.net.placement=post --model.net.layers=12
python -m tasks.transformer predict --ckpt_path <ckpt> --data.prompts='["123+456=", "9+9="]'   # -> <run>/answers.csv
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import BasePredictionWriter
from pytorch_lightning.utilities import rank_zero_info
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.text import Perplexity

from residual_kit.models.gpt import GPTConfig
from tasks.core.cli import TaskCLI, run
from tasks.core.module import NetworkCheckpoint
from tasks.core.outputs import resolve_output, write_csv
from tasks.data.digit_text import DigitTaskDataModule


class DigitTransformer(NetworkCheckpoint, pl.LightningModule):
    """GPT trained on the answer tokens of digit problems; evaluated by greedy generation.

    Args:
        net: the GPT (`--model.net.layers`, `--model.net.placement`, ...; see `GPTConfig`); its `vocab_size`
            and `block_size` are linked from the data module.
        prompt_len: prompt tokens of every problem (linked).
        answer_len: answer tokens, end token included (linked).
        lr: AdamW peak learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps (0: none), then cosine decay to 10% of lr.
    """

    def __init__(
        self,
        net: GPTConfig = GPTConfig(),  # noqa: B008 (copied by the CLI)
        prompt_len: int = 8,
        answer_len: int = 5,
        lr: float = 2e-3,
        weight_decay: float = 0.1,
        warmup_steps: int = 100,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = net.build()
        vocab_size = net.vocab_size
        self.metrics = torch.nn.ModuleDict(
            {
                f"{split}_{name}": metric
                for split in ("val", "test")
                for name, metric in (
                    ("exact", MeanMetric()),
                    ("token_acc", MulticlassAccuracy(vocab_size, average="micro", ignore_index=-100)),
                    ("ppl", Perplexity(ignore_index=-100)),
                )
            }
        )
        self.examples: list[tuple[str, str, str]] = []

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.net(idx)  # (B, T, vocab)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self(x).flatten(0, 1), y.flatten(), ignore_index=-100)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def answer(self, prompts: torch.Tensor) -> torch.Tensor:
        """Greedy answers (B, answer_len) to prompt tokens (B, prompt_len), with the KV cache."""
        return self.net.generate(prompts, self.hparams.answer_len)[:, prompts.shape[1] :]

    def _evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> None:
        x, y = batch
        logits = self(x)
        m = self.metrics
        m[f"{split}_token_acc"](logits.flatten(0, 1), y.flatten())
        m[f"{split}_ppl"](logits, y)
        p = self.hparams.prompt_len
        generated = self.answer(x[:, :p])
        target = y[:, p - 1 :]  # (B, answer_len)
        exact = (generated == target).all(dim=1).float()
        m[f"{split}_exact"](exact)
        self.log(f"{split}/loss", F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100), sync_dist=True)
        for name in ("exact", "token_acc", "ppl"):
            self.log(f"{split}/{name}", m[f"{split}_{name}"], prog_bar=name == "exact")
        if split == "test" and len(self.examples) < 200:
            self._keep_examples(x[:, :p], generated, target, exact)

    def _keep_examples(self, prompts: torch.Tensor, got: torch.Tensor, want: torch.Tensor, exact: torch.Tensor) -> None:
        dm = self.trainer.datamodule
        for i in range(len(prompts)):
            ok = "right" if exact[i] else "wrong"
            if sum(e[0] == ok for e in self.examples) < 5:
                prompt = dm.tokenizer.decode(prompts[i].tolist())
                self.examples.append(
                    (
                        ok,
                        prompt,
                        f"{dm.task.read_answer(dm.tokenizer.decode(got[i].tolist()))} "
                        f"(expected {dm.task.read_answer(dm.tokenizer.decode(want[i].tolist()))})",
                    )
                )

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_test_epoch_start(self) -> None:
        self.examples = []

    def on_test_epoch_end(self) -> None:
        for ok, prompt, answer in sorted(self.examples):
            rank_zero_info(f"{ok:>5}: {prompt}{answer}")

    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        prompts, _ = batch
        return self.answer(prompts)

    def configure_optimizers(self) -> dict[str, Any]:
        h = self.hparams
        decay = [p for p in self.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.parameters() if p.dim() < 2]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": h.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=h.lr,
            betas=(0.9, 0.98),
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))

        def schedule(step: int) -> float:
            if step < h.warmup_steps:
                return (step + 1) / h.warmup_steps
            progress = min(1.0, (step - h.warmup_steps) / max(1, total - h.warmup_steps))
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class AnswerWriter(BasePredictionWriter):
    """Print each prompt with its answer and write them to a CSV.

    Args:
        output: CSV file to write (replaced atomically); default `answers.csv` in the run folder.
    """

    def __init__(self, output: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.output = output

    def write_on_epoch_end(self, trainer: pl.Trainer, pl_module: Any, predictions: Any, batch_indices: Any) -> None:
        dm: DigitTaskDataModule = trainer.datamodule
        answers = [dm.task.read_answer(dm.tokenizer.decode(row.tolist())) for row in torch.cat(list(predictions))]
        rows = list(zip(dm.predict_prompts, answers, strict=True))
        for prompt, answer in rows:
            print(f"{prompt.strip()} {answer}")
        out = write_csv(resolve_output(trainer, self.output, "answers.csv"), ["prompt", "answer"], rows)
        print(f"wrote {len(rows)} answers to {out}")


class TransformerCLI(TaskCLI):
    task, model_class, datamodule_class = "transformer", DigitTransformer, DigitTaskDataModule
    max_epochs = -1
    trainer_overrides = {"max_steps": 800, "val_check_interval": 200, "check_val_every_n_epoch": None,
                         "gradient_clip_val": 1.0}  # fmt: skip
    monitor, mode, checkpoint_filename = "val/exact", "max", "best-step{step}-exact{val/exact:.4f}"
    links = (
        ("data.vocab_size", "model.net.vocab_size"),
        ("data.block_size", "model.net.block_size"),
        ("data.prompt_len", "model.prompt_len"),
        ("data.answer_len", "model.answer_len"),
    )
    writer = AnswerWriter
    divergence_hint = "pre-norm (--model.net.placement=pre)"


def cli_main(args: list[str] | None = None) -> TransformerCLI:
    return TransformerCLI(args)


if __name__ == "__main__":
    run(cli_main)
