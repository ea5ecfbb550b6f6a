"""Is this difference real? Seed spread and a paired comparison with a confidence interval.

Fine-tuning results move with the random seed (Dodge et al. 2020, arXiv 2002.06305;
Mosbach et al. 2021, ICLR). To compare two recipes A and B, run both with the same seeds
(seed s gives both the same head initialisation and data order), take the per-seed
differences d_s = b_s - a_s, and report their mean with a Student-t confidence interval

    mean(d) ± t_{(1+c)/2, n-1} · sd(d) / sqrt(n)      (sd with n - 1 in the denominator)

Pairing removes the part of the spread that both arms share (an easy or hard seed), so
it needs fewer runs than comparing two independent groups. Chapter 11 derives and uses it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def _as_scores(values: object, name: str) -> np.ndarray:
    try:
        a = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a sequence of numbers (one score per seed), got {type(values).__name__}"
                        ) from None
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one score per seed), got shape {a.shape}")
    if a.size < 2:
        raise ValueError(f"{name} has {a.size} score(s); a spread needs at least 2 seeds (5 or more is better)")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf ({a.tolist()}); a diverged run needs a finite score "
                         "(e.g. its accuracy) or must be reported separately")
    return a


def _check_confidence(confidence: float) -> None:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a number strictly between 0 and 1 (e.g. 0.95), got {confidence!r}")


def t_quantile(q: float, df: int) -> float:
    """The q-quantile of Student's t distribution with ``df`` degrees of freedom (scipy)."""
    from scipy.stats import t

    if not 0 < q < 1:
        raise ValueError(f"q must lie strictly between 0 and 1, got {q!r}")
    if isinstance(df, bool) or not isinstance(df, (int, np.integer)) or df < 1:
        raise ValueError(f"df must be an int >= 1, got {df!r}")
    return float(t.ppf(q, df))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1 in the denominator) of per-seed scores (n,)."""
    a = _as_scores(values, "values")
    return float(a.mean()), float(a.std(ddof=1))


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval (low, high) for the mean of ``values`` (n,), n >= 2."""
    _check_confidence(confidence)
    a = _as_scores(values, "values")
    n = a.size
    half = t_quantile((1 + confidence) / 2, n - 1) * a.std(ddof=1) / math.sqrt(n)
    return float(a.mean() - half), float(a.mean() + half)


@dataclass(frozen=True)
class PairedComparison:
    """The result of :func:`paired_comparison`: B minus A, per seed and on average, with its interval."""

    name_a: str
    name_b: str
    a: tuple[float, ...]
    b: tuple[float, ...]
    diffs: tuple[float, ...]
    mean_diff: float
    ci_low: float
    ci_high: float
    confidence: float

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def significant(self) -> bool:
        """True when the interval excludes 0: the data say B and A differ (at this confidence)."""
        return self.ci_low > 0 or self.ci_high < 0

    @property
    def verdict(self) -> str:
        if self.ci_low > 0:
            return f"{self.name_b} is better"
        if self.ci_high < 0:
            return f"{self.name_a} is better"
        return "no detectable difference"

    def __str__(self) -> str:
        ma, sa = mean_std(self.a)
        mb, sb = mean_std(self.b)
        return (f"{self.name_a} {ma:.3f} ± {sa:.3f} | {self.name_b} {mb:.3f} ± {sb:.3f} | "
                f"{self.name_b} - {self.name_a} = {self.mean_diff:+.3f}, "
                f"{self.confidence:.0%} CI [{self.ci_low:+.3f}, {self.ci_high:+.3f}] over {self.n} paired seeds: "
                f"{self.verdict}")


def paired_comparison(a: Sequence[float], b: Sequence[float], *, name_a: str = "A", name_b: str = "B",
                      confidence: float = 0.95) -> PairedComparison:
    """Compare recipe B with recipe A run on the same seeds: a (n,), b (n,), entry s from seed s.

    Returns the per-seed differences b - a, their mean and a Student-t ``confidence``
    interval for it. The interval excluding 0 is the evidence that the recipes differ.
    """
    _check_confidence(confidence)
    a_arr, b_arr = _as_scores(a, "a"), _as_scores(b, "b")
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"a has {a_arr.size} scores but b has {b_arr.size}; a paired comparison needs one "
                         "score per seed for both recipes, in the same seed order")
    d = b_arr - a_arr
    if np.all(d == d[0]):
        low = high = float(d[0])  # zero spread: the interval collapses onto the (exact) difference
    else:
        low, high = t_interval(d, confidence)
    return PairedComparison(name_a, name_b, tuple(a_arr.tolist()), tuple(b_arr.tolist()), tuple(d.tolist()),
                            float(d.mean()), low, high, float(confidence))


__all__ = ["t_quantile", "mean_std", "t_interval", "PairedComparison", "paired_comparison"]
