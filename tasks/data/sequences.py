"""The Transformer task's data: generated digit problems (the default), or any text file as bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from .char_text import CharTextDataModule
from .digit_text import DigitTask, DigitTaskDataModule, Task, Tokenizer
from .wrapped import WrappedDataModule


class SequenceDataModule(WrappedDataModule):
    """Digit problems (`task`), or, with `text_file`, a byte-level language model's windows of that text.

    Args:
        task: "add", "sort" or "reverse" (ignored with `text_file`).
        digits: operand width (addition) or sequence length (sort, reverse).
        reverse_answer: write sums least significant digit first (makes addition easy to learn).
        text_file: a text file to model byte by byte (a tenth held out in blocks spread across it).
        block_size: bytes of context of the text model.
        continuation: bytes that `predict` writes after each prompt of the text model.
        num_train: training problems (text: training windows per epoch).
        num_val: validation problems (text: None scores every held-out byte).
        num_test: test problems.
        batch_size: problems or windows per batch.
        seed: fixes which problems go where, and the text's training windows.
        prompts: prompts for `predict`, e.g. ["123+456="] or ["def add("].
        prompts_file: a text file with one prompt per line, for `predict`.
    """

    def __init__(
        self,
        task: Task = "add",
        digits: int = 3,
        reverse_answer: bool = True,
        text_file: str | None = None,
        block_size: int = 128,
        continuation: int = 200,
        num_train: int = 100_000,
        num_val: int | None = 1_000,
        num_test: int = 2_000,
        batch_size: int = 128,
        seed: int = 0,
        prompts: list[str] | None = None,
        prompts_file: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if text_file is None:
            problems = DigitTask(task, digits, reverse_answer)
            self.vocabulary, self.vocab_size = "digits", Tokenizer().vocab_size
            self.prompt_len, self.answer_len = problems.prompt_len, problems.answer_len
            self.block_size = self.prompt_len + self.answer_len
        else:
            self.vocabulary, self.vocab_size, self.block_size = "bytes", 256, block_size
            self.prompt_len, self.answer_len = 0, continuation
        self.task, self.digits, self.reverse_answer = task, digits, reverse_answer
        self.predict_prompts: list[str] = []

    def build_inner(self) -> pl.LightningDataModule:
        h = self.hparams
        if h.text_file is None:
            return DigitTaskDataModule(h.task, h.digits, h.reverse_answer, h.num_train, h.num_val or 1_000,
                                       h.num_test, h.batch_size, h.seed)  # fmt: skip
        return CharTextDataModule(h.text_file, h.block_size, h.batch_size, h.num_train, None, seed=h.seed)

    def setup(self, stage: str) -> None:
        if stage != "predict":
            super().setup(stage)
            return
        h = self.hparams
        lines = list(h.prompts or [])
        if h.prompts_file:
            path = Path(h.prompts_file)
            if not path.is_file():
                raise FileNotFoundError(f"prompts file {path} does not exist")
            lines += [line for line in path.read_text().splitlines() if line.strip()]
        if not lines:
            raise ValueError("predict needs prompts: --data.prompts='[\"123+456=\"]' or --data.prompts_file=<file>")
        self.predict_prompts = lines

    def predict_dataloader(self) -> DataLoader:
        """The prompts as strings: the model parses and encodes them itself (it owns its tokenizer)."""
        return DataLoader(self.predict_prompts, batch_size=self.hparams.batch_size, collate_fn=list)


Vocabulary = Literal["digits", "bytes"]

__all__ = ["SequenceDataModule", "Vocabulary"]
