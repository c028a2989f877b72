"""The uncertainty a report states: t-based confidence intervals over seeds, paired t-tests, Holm.

Seeds are the unit: a cell's runs differ only in their seed (:mod:`.cells`), and runs of two
methods with the same seed share their data order and initialisation seed, so a difference is
measured seed by seed (a paired design) before it is averaged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE  # a Holm-adjusted p-value below it is a verdict
MIN_SEEDS = 3  # seeds (or pairs of seeds) a ranking or a test verdict needs

INTERVAL_RULE = (
    f"mean ± the half-width of its {CONFIDENCE:.0%} confidence interval over the seeds: t-based, "
    f"t(0.975, n-1) · s / √n with s the sample standard deviation (ddof=1) and n the seeds; "
    f"a single seed has no interval and shows its value alone"
)


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` values and the half-width of its confidence interval (NaN below 2 values)."""

    mean: float
    half: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half

    @property
    def high(self) -> float:
        return self.mean + self.half


def _number(value) -> float:
    """``value`` as a float; NaN for a missing one (None, NaN, pandas' NA) or a non-number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _finite(values) -> np.ndarray:
    array = np.asarray([_number(v) for v in values], dtype=float)
    return array[np.isfinite(array)]


def interval(values, confidence: float = CONFIDENCE) -> Interval:
    """The t-based interval of the mean of ``values`` (missing ones dropped)."""
    x = _finite(values)
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, 0)
    if n == 1:
        return Interval(float(x[0]), math.nan, 1)
    t = stats.t.ppf(0.5 + confidence / 2, n - 1)
    return Interval(float(x.mean()), float(t * x.std(ddof=1) / math.sqrt(n)), n)


@dataclass(frozen=True)
class Paired:
    """``other - baseline`` over the seeds both have: the mean difference with its interval, and
    the two-sided paired t-test's p-value (NaN below :data:`MIN_SEEDS` pairs, or when the
    differences do not vary and are not all zero)."""

    n: int
    difference: Interval
    p: float
    seeds: tuple = ()


def paired(other: dict, baseline: dict, confidence: float = CONFIDENCE) -> Paired:
    """Pair ``other`` and ``baseline`` ({seed: value}) by seed and compare them."""
    seeds = tuple(
        s
        for s in sorted(set(other) & set(baseline))
        if math.isfinite(_number(other[s])) and math.isfinite(_number(baseline[s]))
    )
    a = np.array([_number(other[s]) for s in seeds])
    b = np.array([_number(baseline[s]) for s in seeds])
    difference = interval(a - b, confidence)
    p = math.nan
    if len(seeds) >= MIN_SEEDS:
        d = a - b
        if np.ptp(d) > 0:
            p = float(stats.ttest_rel(a, b).pvalue)
        elif np.all(d == 0):
            p = 1.0
    return Paired(len(seeds), difference, p, seeds)


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979) over the family of the finite ``pvalues``;
    NaN stays NaN (not in the family). Sorted ascending, the i-th of m (from 0) is adjusted to
    max over j <= i of min(1, (m - j) p_(j)): rejecting where it is below alpha controls the
    family-wise error rate at alpha."""
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(p.shape, math.nan)
    family = np.flatnonzero(np.isfinite(p))
    m = len(family)
    running = 0.0
    for rank, index in enumerate(family[np.argsort(p[family], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted
