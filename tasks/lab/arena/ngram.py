"""n-gram count models of the training bytes: the references a language model must beat on the same held-out bytes."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


def context_ids(data: torch.Tensor, order: int) -> torch.Tensor:
    """For each position t >= order - 1 of `data`, the id of bytes t-order+1..t in base 256, (len - order + 1,)."""
    ids = torch.zeros(len(data) - order + 1, dtype=torch.long)
    for j in range(order):
        ids = ids * 256 + data[j : len(data) - order + 1 + j].long()
    return ids


class NGram:
    """An add-k n-gram model of bytes: P(y | c) = (count(c, y) + k) / (count(c) + 256 k), c the n - 1 bytes before
    y; where fewer bytes come before y (at a window's start), the model of the shorter context answers.

    Args:
        train: the training bytes (uint8).
        n: the order (1: unigram counts).
        k: the add-k smoothing.
    """

    def __init__(self, train: torch.Tensor, n: int, k: float) -> None:
        if not 1 <= n <= 7:
            raise ValueError(f"n={n}: give an order from 1 to 7")
        self.n, self.k = n, k
        self.tables = [self._count(train, order) for order in range(1, n + 1)]  # context length order - 1

    @staticmethod
    def _count(train: torch.Tensor, order: int) -> tuple[torch.Tensor, ...]:
        keys, counts = context_ids(train, order).unique(return_counts=True)  # sorted (context, next) ids
        contexts = (keys // 256).unique()
        sums = torch.zeros(len(contexts), dtype=torch.long).index_add_(
            0, torch.searchsorted(contexts, keys // 256), counts
        )
        return keys, counts, contexts, sums

    @staticmethod
    def _lookup(sorted_keys: torch.Tensor, values: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        i = torch.searchsorted(sorted_keys, query).clamp(max=len(sorted_keys) - 1)
        return torch.where(sorted_keys[i] == query, values[i], torch.zeros_like(values[i]))

    def log2_prob(self, history: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """log2 P(y | history) for histories (N, c), c < n bytes each (the last the nearest), and next bytes (N,)."""
        keys, counts, contexts, sums = self.tables[history.shape[1]]
        context = torch.zeros(len(y), dtype=torch.long)
        for j in range(history.shape[1]):
            context = context * 256 + history[:, j].long()
        pair = self._lookup(keys, counts, context * 256 + y.long()).double()
        total = self._lookup(contexts, sums, context).double()
        return torch.log2((pair + self.k) / (total + 256 * self.k))

    def bits_per_byte(self, windows: Dataset) -> float:
        """Bits per byte on held-out windows (x, y): target y_t predicted from x_(t-n+2..t), as a language model that
        reads the window sees it (targets of -100 are padding)."""
        x, y = (torch.stack(part) for part in zip(*(windows[i] for i in range(len(windows))), strict=True))
        bits, count = 0.0, 0
        for t in range(x.shape[1]):
            c = min(self.n - 1, t + 1)  # bytes of context available at position t
            valid = y[:, t] >= 0
            log2p = self.log2_prob(x[valid, t + 1 - c : t + 1], y[valid, t])
            bits, count = bits - log2p.sum().item(), count + int(valid.sum())
        return bits / count


REFERENCES = {"unigram": (1, 0.5), "bigram": (2, 0.5), "trigram": (3, 0.05)}
"""The count models every arena report prints: name -> (order, add-k)."""


def reference_bits(train: torch.Tensor, windows: Dataset) -> dict[str, float]:
    """Bits per byte of each reference count model on the held-out windows."""
    return {name: NGram(train, n, k).bits_per_byte(windows) for name, (n, k) in REFERENCES.items()}


__all__ = ["REFERENCES", "NGram", "context_ids", "reference_bits"]
