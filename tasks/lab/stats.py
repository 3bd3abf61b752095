"""Paired comparisons over seeds: the mean difference with its 95% confidence interval (Student's t)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy.stats import t as student_t


@dataclass(frozen=True)
class PairedDifference:
    """mean(a_i - b_i) over n pairs, and its confidence interval [low, high] at `confidence`."""

    mean: float
    low: float
    high: float
    n: int
    confidence: float = 0.95

    @property
    def significant(self) -> bool:
        """The interval excludes 0."""
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        mark = "*" if self.significant else ""
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}]{mark}"


def paired_difference(a: list[float], b: list[float], confidence: float = 0.95) -> PairedDifference:
    """The differences a_i - b_i of runs that share seed i (same data order, same init draw), their mean and the
    t-interval mean ± t_((1+c)/2, n-1) · s / sqrt(n) with s the sample standard deviation; NaN with fewer than
    two finite pairs."""
    if len(a) != len(b):
        raise ValueError(f"paired runs need the same seeds: {len(a)} against {len(b)}")
    d = [x - y for x, y in zip(a, b, strict=True) if math.isfinite(x) and math.isfinite(y)]
    if len(d) < 2:
        mean = d[0] if d else math.nan
        return PairedDifference(mean, math.nan, math.nan, len(d), confidence)
    mean, s = statistics.fmean(d), statistics.stdev(d)
    half = student_t.ppf((1 + confidence) / 2, len(d) - 1) * s / math.sqrt(len(d))
    return PairedDifference(mean, mean - half, mean + half, len(d), confidence)


def mean_and_sample_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation of the finite values (NaN where there are too few)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    return statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else math.nan


__all__ = ["PairedDifference", "mean_and_sample_std", "paired_difference"]
