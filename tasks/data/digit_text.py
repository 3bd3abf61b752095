"""Digit-sequence tasks for a language model: addition "a+b=c", sorting and reversal, generated and seeded.

Operands are zero-padded to a fixed width so every example of a task has the same length:
    add       "042+917=0959$"   (reverse_answer: "042+917=9590$", the answer's digits least significant first)
    sort      "s30412=01234$"
    reverse   "r30412=21403$"
Held-out problems (val, test) never appear in training: the problem set is split once, without overlap.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch.utils.data import Dataset

from .reproducible import SplitDataModule

Task = Literal["add", "sort", "reverse"]


class Tokenizer:
    """Characters <-> ids over digits and the few symbols the tasks use; id 0 is padding."""

    chars = "0123456789+=sr$"
    pad_id = 0

    def __init__(self) -> None:
        self.stoi = {c: i + 1 for i, c in enumerate(self.chars)}
        self.itos = {i: c for c, i in self.stoi.items()}
        self.end_id = self.stoi["$"]

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str) -> list[int]:
        bad = sorted(set(text) - set(self.chars))
        if bad:
            raise ValueError(f"characters {bad} are not in the vocabulary {self.chars!r}")
        return [self.stoi[c] for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.itos.get(int(i), "") for i in ids)


class DigitTask:
    """Formats and solves one task; `problems(n, seed)` draws distinct problems."""

    def __init__(self, task: Task = "add", digits: int = 3, reverse_answer: bool = True) -> None:
        if task not in ("add", "sort", "reverse"):
            raise ValueError(f"task={task!r} is not one of ('add', 'sort', 'reverse')")
        if digits < 1:
            raise ValueError(f"digits must be >= 1, got {digits}")
        self.task, self.digits, self.reverse_answer = task, digits, reverse_answer

    @property
    def answer_len(self) -> int:
        return (self.digits + 1 if self.task == "add" else self.digits) + 1  # + end token

    @property
    def prompt_len(self) -> int:
        return 2 * self.digits + 2 if self.task == "add" else self.digits + 2

    def prompt(self, problem: tuple[int, ...]) -> str:
        if self.task == "add":
            a, b = problem
            return f"{a:0{self.digits}d}+{b:0{self.digits}d}="
        return ("s" if self.task == "sort" else "r") + "".join(map(str, problem)) + "="

    def answer(self, problem: tuple[int, ...]) -> str:
        if self.task == "add":
            text = f"{problem[0] + problem[1]:0{self.digits + 1}d}"
            text = text[::-1] if self.reverse_answer else text
        elif self.task == "sort":
            text = "".join(map(str, sorted(problem)))
        else:
            text = "".join(map(str, problem[::-1]))
        return text + "$"

    def read_answer(self, generated: str) -> str:
        """The answer as a person reads it (un-reversed, no end token, no leading zeros for sums)."""
        text = generated.split("$")[0]
        if self.task == "add":
            text = text[::-1] if self.reverse_answer else text
            return text.lstrip("0") or "0"
        return text

    def parse_prompt(self, text: str) -> tuple[int, ...]:
        """Read a user's prompt ("123+45=", "s3021=") into a problem, checking it fits this task."""
        text = text.strip()
        if self.task == "add":
            m = re.fullmatch(r"(\d+)\+(\d+)=?", text)
            if not m or max(len(m[1]), len(m[2])) > self.digits:
                raise ValueError(f"prompt {text!r} is not 'a+b=' with a and b of at most {self.digits} digits")
            return int(m[1]), int(m[2])
        m = re.fullmatch(rf"{'s' if self.task == 'sort' else 'r'}?(\d{{{self.digits}}})=?", text)
        if not m:
            raise ValueError(f"prompt {text!r} is not {self.digits} digits for the {self.task} task")
        return tuple(int(c) for c in m[1])

    def problems(self, n: int, seed: int) -> list[tuple[int, ...]]:
        """`n` distinct problems in a seeded order."""
        g = torch.Generator().manual_seed(seed)
        size = 10 ** (2 * self.digits) if self.task == "add" else 10**self.digits
        if n > size:
            raise ValueError(f"asked for {n} distinct problems but the task has only {size}")
        codes = torch.randperm(size, generator=g)[:n].tolist() if size <= 10**7 else _distinct(n, size, g)
        return [self._decode_problem(c) for c in codes]

    def _decode_problem(self, code: int) -> tuple[int, ...]:
        if self.task == "add":
            return divmod(code, 10**self.digits)
        return tuple(int(c) for c in f"{code:0{self.digits}d}")


def _distinct(n: int, size: int, g: torch.Generator) -> list[int]:
    seen: dict[int, None] = {}
    while len(seen) < n:
        for c in torch.randint(0, size, (n,), generator=g).tolist():
            seen.setdefault(c, None)
    return list(seen)[:n]


class ProblemSet(Dataset):
    """(tokens, targets) pairs: targets are the next tokens, -100 (ignored) on the prompt."""

    def __init__(self, task: DigitTask, problems: list[tuple[int, ...]], tokenizer: Tokenizer) -> None:
        self.task, self.problems, self.tok = task, problems, tokenizer

    def __len__(self) -> int:
        return len(self.problems)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.problems[i]
        ids = torch.tensor(self.tok.encode(self.task.prompt(p) + self.task.answer(p)))
        x, y = ids[:-1], ids[1:].clone()
        y[: self.task.prompt_len - 1] = -100  # learn only the answer
        return x, y


class DigitTaskDataModule(SplitDataModule):
    """Seeded, disjoint train/val/test problems for one digit task.

    Args:
        task: "add", "sort" or "reverse".
        digits: operand width (addition) or sequence length (sort, reverse).
        reverse_answer: write sums least significant digit first (makes addition easy to learn).
        num_train: training problems.
        num_val: validation problems.
        num_test: test problems.
        batch_size: problems per batch.
        seed: fixes which problems go where.
    """

    def __init__(
        self,
        task: Task = "add",
        digits: int = 3,
        reverse_answer: bool = True,
        num_train: int = 100_000,
        num_val: int = 1_000,
        num_test: int = 2_000,
        batch_size: int = 128,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.task = DigitTask(task, digits, reverse_answer)
        self.tokenizer = Tokenizer()
        self.vocab_size = self.tokenizer.vocab_size
        self.prompt_len, self.answer_len = self.task.prompt_len, self.task.answer_len
        self.block_size = self.prompt_len + self.answer_len

    def setup(self, stage: str) -> None:
        h = self.hparams
        problems = self.task.problems(h.num_test + h.num_val + h.num_train, h.seed)
        test, val, train = (
            problems[: h.num_test],
            problems[h.num_test : h.num_test + h.num_val],
            problems[h.num_test + h.num_val :],
        )
        self.train_set = ProblemSet(self.task, train, self.tokenizer)
        self.val_set = ProblemSet(self.task, val, self.tokenizer)
        self.test_set = ProblemSet(self.task, test, self.tokenizer)

    def loader_options(self, train: bool) -> dict[str, Any]:
        return {"drop_last": train}
