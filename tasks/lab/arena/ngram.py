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


class KneserNey(NGram):
    """Interpolated Kneser-Ney of order n over bytes (Kneser & Ney 1995; Chen & Goodman 1999, eq. 17): the best of
    the classic count models, the reference a byte-level language model should pass.

        P_k(y | c) = max(N_k(c, y) - D_k, 0) / N_k(c) + D_k · T_k(c) / N_k(c) · P_(k-1)(y | c')

    with c' the context c less its farthest byte, N_n the counts of the training text at the highest order and, at
    every lower order, continuation counts (how many different bytes come before (c, y)), T_k(c) the number of
    different bytes seen after c, D_k = n1 / (n1 + 2 n2) from the numbers of k-grams seen once and twice, and the
    uniform 1/256 below order 1. A context never seen gives the lower order's answer.

    Args:
        train: the training bytes (uint8).
        n: the order.
    """

    def __init__(self, train: torch.Tensor, n: int) -> None:
        if not 1 <= n <= 7:
            raise ValueError(f"n={n}: give an order from 1 to 7")
        self.n = n
        self.levels = []
        keys, counts = context_ids(train, n).unique(return_counts=True)
        for order in range(n, 0, -1):  # highest order first: counts of the text, then continuation counts
            contexts, inverse = (keys // 256).unique(return_inverse=True)
            totals = torch.zeros(len(contexts), dtype=torch.long).index_add_(0, inverse, counts)
            types = torch.bincount(inverse, minlength=len(contexts))
            n1, n2 = int((counts == 1).sum()), int((counts == 2).sum())
            discount = n1 / (n1 + 2 * n2) if n1 + 2 * n2 else 0.5
            self.levels.insert(0, (keys, counts, contexts, totals, types, discount))
            if order > 1:  # continuation counts of the (order - 1)-grams: distinct bytes before each
                keys, counts = (keys % 256 ** (order - 1)).unique(return_counts=True)

    def log2_prob(self, history: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        prob = torch.full((len(y),), 1 / 256, dtype=torch.double)
        context = torch.zeros(len(y), dtype=torch.long)
        for k in range(1, history.shape[1] + 2):  # order k: k - 1 bytes of context, the nearest last
            if k > 1:
                context = context + history[:, -(k - 1)].long() * 256 ** (k - 2)
            keys, counts, contexts, totals, types, d = self.levels[k - 1]
            seen = self._lookup(keys, counts, context * 256 + y.long()).double()
            total = self._lookup(contexts, totals, context).double()
            kinds = self._lookup(contexts, types, context).double()
            known = total > 0
            mixed = ((seen - d).clamp(min=0) + d * kinds * prob) / total.clamp(min=1)
            prob = torch.where(known, mixed, prob)
        return torch.log2(prob)


REFERENCES: dict[str, tuple[int, float | None]] = {
    "unigram": (1, 0.5),
    "bigram": (2, 0.5),
    "trigram": (3, 0.05),
    "3-gram Kneser-Ney": (3, None),
    "5-gram Kneser-Ney": (5, None),
}
"""The count models every arena report prints: name -> (order, add-k; None for interpolated Kneser-Ney)."""


def count_model(train: torch.Tensor, n: int, k: float | None) -> NGram:
    return NGram(train, n, k) if k is not None else KneserNey(train, n)


def reference_bits(train: torch.Tensor, windows: Dataset) -> dict[str, float]:
    """Bits per byte of each reference count model on the held-out windows."""
    return {name: count_model(train, n, k).bits_per_byte(windows) for name, (n, k) in REFERENCES.items()}


__all__ = ["REFERENCES", "KneserNey", "NGram", "context_ids", "count_model", "reference_bits"]
