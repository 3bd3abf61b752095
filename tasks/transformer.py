"""A small GPT on digit sequences, or on any text: `python -m tasks.transformer fit` learns 3-digit addition.

python -m tasks.transformer fit                                        # 4 layers, width 128, pre-norm
python -m tasks.transformer fit --model.net.placement=post --model.net.layers=12
python -m tasks.transformer predict --ckpt_path <ckpt> --data.prompts='["123+456=", "9+9="]'   # -> <run>/answers.csv
python -m tasks.transformer fit --data.text_file=notes.txt             # a byte-level language model of a text
python -m tasks.transformer predict --ckpt_path <ckpt> --data.prompts='["def add("]'          # continues the prompt
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import rank_zero_info
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.text import Perplexity

from residual_kit.models.gpt import GPTConfig
from residual_kit.optim import param_groups
from tasks.core.cli import TaskCLI, run, task_main
from tasks.core.export import Deployable
from tasks.core.module import NetworkCheckpoint
from tasks.core.schedule import warmup_cosine
from tasks.core.writers import CSVWriter
from tasks.data.digit_text import DigitTask, Task, Tokenizer
from tasks.data.sequences import SequenceDataModule, Vocabulary


class DigitTransformer(NetworkCheckpoint, pl.LightningModule):
    """GPT trained on the answer tokens of digit problems (evaluated by greedy generation), or on every byte of a
    text (evaluated in bits per byte, sampled for its continuations).

    Args:
        net: the GPT (`--model.net.layers`, `--model.net.placement`, ...; see `GPTConfig`); its `vocab_size`
            and `block_size` are linked from the data module.
        prompt_len: prompt tokens of every problem (linked).
        answer_len: answer tokens, end token included; of a text model, the bytes of a continuation (linked).
        lr: AdamW peak learning rate.
        weight_decay: AdamW weight decay of the weight matrices (`residual_kit.optim`: norms, biases, scalars and
            connection weights take none).
        scalar_lr: the learning rate of the scalars that multiply a stream (`residual_kit.optim`; None: `lr`).
        warmup_steps: linear warm-up steps (0: none), then cosine decay to 10% of lr.
        vocabulary: "digits" (the digit problems' tokens) or "bytes" (a text model) (linked).
        task: the digit task, "add", "sort" or "reverse" (linked); with its `digits` and `reverse_answer`, what
            reads a prompt and writes an answer, saved with the model.
        digits: operand width (linked).
        reverse_answer: sums written least significant digit first (linked).
        temperature: a text model's sampling temperature for continuations (0: greedy).
        top_k: sample among the k most likely bytes (None: all).
    """

    def __init__(
        self,
        net: GPTConfig = GPTConfig(),  # noqa: B008 (copied by the CLI)
        prompt_len: int = 8,
        answer_len: int = 5,
        lr: float = 2e-3,
        weight_decay: float = 0.1,
        scalar_lr: float | None = None,
        warmup_steps: int = 100,
        vocabulary: Vocabulary = "digits",
        task: Task = "add",
        digits: int = 3,
        reverse_answer: bool = True,
        temperature: float = 0.8,
        top_k: int | None = 20,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = net.build()
        self.text = vocabulary == "bytes"
        self.tokenizer = None if self.text else Tokenizer()
        self.task = None if self.text else DigitTask(task, digits, reverse_answer)
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
        if self.text:  # bits per byte, every byte weighed alike
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100)
            self.log(f"{split}/loss", loss, sync_dist=True, prog_bar=True)
            self.log(f"{split}/bpb", loss / math.log(2), sync_dist=True)
            return
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
        tok, task = self.tokenizer, self.task
        for i in range(len(prompts)):
            ok = "right" if exact[i] else "wrong"
            if sum(e[0] == ok for e in self.examples) < 5:
                answer = f"{task.read_answer(tok.decode(got[i].tolist()))} "
                expected = f"(expected {task.read_answer(tok.decode(want[i].tolist()))})"
                self.examples.append((ok, tok.decode(prompts[i].tolist()), answer + expected))

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_test_epoch_start(self) -> None:
        self.examples = []

    def on_test_epoch_end(self) -> None:
        for ok, prompt, answer in sorted(self.examples):
            rank_zero_info(f"{ok:>5}: {prompt}{answer}")

    def predict_step(self, batch: list[str], batch_idx: int) -> list[tuple[str, str]]:
        return list(zip(batch, self.complete(batch), strict=True))

    # --- use from Python ---
    @torch.no_grad()
    def complete(self, prompts: str | list[str], seed: int = 0) -> list[str]:
        """The answer to each digit prompt ("123+456=" -> "579"), or a text model's continuation of each prompt
        (`answer_len` bytes, sampled with `temperature` and `top_k` from `seed`)."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        self.eval()
        if not self.text:
            tok, task = self.tokenizer, self.task
            ids = torch.tensor([tok.encode(task.prompt(task.parse_prompt(p))) for p in prompts], device=self.device)
            return [task.read_answer(tok.decode(row.tolist())) for row in self.answer(ids)]
        h, out = self.hparams, []
        generator = torch.Generator(device=self.device).manual_seed(seed)
        for prompt in prompts:
            ids = torch.tensor([list(prompt.encode())], device=self.device)[:, -(self.net.block_size - 1) :]
            if ids.shape[1] == 0:
                raise ValueError("a text model continues a prompt: give at least one character")
            new = min(h.answer_len, self.net.block_size - ids.shape[1])
            tokens = self.net.generate(ids, new, temperature=h.temperature, top_k=h.top_k, generator=generator)
            out.append(bytes(tokens[0, ids.shape[1] :].tolist()).decode("utf-8", errors="replace"))
        return out

    def deployable(self) -> Deployable:
        """For `export`: token ids (B, T), T up to the block size -> next-token logits (B, T, vocab)."""
        example = torch.zeros(2, min(8, self.net.block_size), dtype=torch.long)
        tokens = torch.export.Dim("tokens", min=1, max=self.net.block_size)
        return Deployable(self.net, (example,), ({0: torch.export.Dim("batch"), 1: tokens},), ["tokens"], ["logits"])

    def configure_optimizers(self) -> dict[str, Any]:
        h = self.hparams
        groups = param_groups(self, h.weight_decay, scalar_lr=h.scalar_lr)
        opt = torch.optim.AdamW(groups, lr=h.lr, betas=(0.9, 0.98))
        sched = warmup_cosine(opt, h.warmup_steps, int(self.trainer.estimated_stepping_batches))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class AnswerWriter(CSVWriter):
    """Print each prompt with its answer (or continuation) and write them to `answers.csv` (prompt, answer)."""

    filename, things, columns = "answers.csv", "answers", ("prompt", "answer")

    def show(self, row: Any) -> str:
        return f"{row[0].strip()} {row[1]}"


class TransformerCLI(TaskCLI):
    task, model_class, datamodule_class = "transformer", DigitTransformer, SequenceDataModule
    max_epochs = -1
    trainer_overrides = {"max_steps": 800, "val_check_interval": 200, "check_val_every_n_epoch": None,
                         "gradient_clip_val": 1.0}  # fmt: skip
    monitor, mode, checkpoint_filename = "val/exact", "max", "best-step{step}-exact{val/exact:.4f}"
    links = (
        ("data.vocab_size", "model.net.vocab_size"),
        ("data.block_size", "model.net.block_size"),
        ("data.prompt_len", "model.prompt_len"),
        ("data.answer_len", "model.answer_len"),
        ("data.vocabulary", "model.vocabulary"),
        ("data.task", "model.task"),
        ("data.digits", "model.digits"),
        ("data.reverse_answer", "model.reverse_answer"),
    )
    writer = AnswerWriter
    divergence_hint = "pre-norm (--model.net.placement=pre)"

    def before_instantiate_classes(self) -> None:
        """A text model is chosen by its held-out loss (a digit model by its exact answers), unless the command
        line says otherwise."""
        super().before_instantiate_classes()
        config = self.config.get(self.subcommand, self.config) if self.subcommand else self.config
        if config["data"].get("text_file") and config["checkpoint"]["monitor"] == self.monitor:
            config["checkpoint"]["monitor"], config["checkpoint"]["mode"] = "val/loss", "min"
            config["checkpoint"]["filename"] = "best-step{step}-loss{val/loss:.4f}"


def cli_main(args: list[str] | None = None) -> Any:
    return task_main(TransformerCLI, args)


if __name__ == "__main__":
    run(cli_main)
