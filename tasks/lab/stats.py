"""Paired comparisons over seeds: the mean difference, its 95% confidence interval and p-value (Student's t), and
Holm's adjustment of the p-values of a family of comparisons."""

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
    p: float = math.nan  # two-sided, of the paired t-test against a mean of 0

    @property
    def significant(self) -> bool:
        """The interval excludes 0 (unadjusted: see `holm` for a family of comparisons)."""
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


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
    se = s / math.sqrt(len(d))
    half = student_t.ppf((1 + confidence) / 2, len(d) - 1) * se
    p = 2 * student_t.sf(abs(mean) / se, len(d) - 1) if se > 0 else (0.0 if mean else 1.0)
    return PairedDifference(mean, mean - half, mean + half, len(d), confidence, float(p))


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm's step-down adjustment (Holm 1979) of a family of p-values, which keeps the chance of any false claim
    in the family below the level: the i-th smallest of m is multiplied by (m - i + 1), and each adjusted value is
    at least the one before it (capped at 1). NaN p-values (too few pairs) stay NaN and count in m."""
    m = len(p_values)
    order = sorted((p for p in p_values.items() if math.isfinite(p[1])), key=lambda kv: kv[1])
    adjusted, running = {k: math.nan for k in p_values}, 0.0
    for i, (name, p) in enumerate(order):
        running = max(running, min(1.0, (m - i) * p))
        adjusted[name] = running
    return adjusted


def mean_and_sample_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation of the finite values (NaN where there are too few)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    return statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else math.nan


__all__ = ["PairedDifference", "holm", "mean_and_sample_std", "paired_difference"]
