"""sftcourse.stats: t quantiles against printed tables, intervals by hand and by simulated coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sftcourse.stats import mean_std, paired_comparison, t_interval, t_quantile


@pytest.mark.parametrize("df, expected", [(1, 12.7062), (4, 2.7764), (9, 2.2622), (30, 2.0423)])
def test_t_quantile_matches_a_printed_table(df, expected):
    # two-sided 95% critical values from any statistics table
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)


def test_t_quantile_approaches_the_normal_quantile():
    assert t_quantile(0.975, 100_000) == pytest.approx(1.959964, abs=1e-4)


def test_mean_std_uses_n_minus_one():
    assert mean_std([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5, math.sqrt(5 / 3)))


def test_t_interval_by_hand():
    x = [0.90, 0.94, 0.91, 0.97, 0.93]
    m, s = np.mean(x), np.std(x, ddof=1)
    half = 2.776445 * s / math.sqrt(5)
    assert t_interval(x) == pytest.approx((m - half, m + half), abs=1e-6)
    lo90, hi90 = t_interval(x, confidence=0.9)
    assert m - half < lo90 < hi90 < m + half  # a lower confidence gives a narrower interval


def test_t_interval_covers_the_true_mean_at_the_stated_rate():
    rng = np.random.default_rng(0)
    hits = sum(lo <= 0.3 <= hi for lo, hi in (t_interval(rng.normal(0.3, 2.0, size=5)) for _ in range(4000)))
    assert abs(hits / 4000 - 0.95) < 0.015
    # the oracle can fail: a z interval (1.96 instead of t) undercovers at n = 5
    z_hits = 0
    for _ in range(4000):
        x = rng.normal(0.3, 2.0, size=5)
        half = 1.96 * x.std(ddof=1) / math.sqrt(5)
        z_hits += x.mean() - half <= 0.3 <= x.mean() + half
    assert z_hits / 4000 < 0.93


def test_paired_comparison_is_the_interval_of_the_differences():
    a = [0.80, 0.85, 0.70, 0.90, 0.75]
    b = [0.83, 0.86, 0.74, 0.92, 0.79]
    c = paired_comparison(a, b, name_a="plain", name_b="new")
    d = np.subtract(b, a)
    assert c.diffs == pytest.approx(tuple(d)) and c.mean_diff == pytest.approx(d.mean())
    assert (c.ci_low, c.ci_high) == pytest.approx(t_interval(d))
    assert c.significant and c.verdict == "new is better" and c.n == 5
    assert "new - plain = +0.028" in str(c)


def test_pairing_detects_what_independent_groups_miss():
    # a shared seed effect (spread 0.1) hides a consistent +0.01 unless runs are paired by seed
    seed_effect = np.array([0.0, 0.1, -0.1, 0.05, -0.05])
    a, b = 0.8 + seed_effect, 0.81 + seed_effect + np.array([0.001, -0.001, 0.002, 0.0, -0.002])
    assert paired_comparison(a, b).significant
    (lo_a, hi_a), (lo_b, hi_b) = t_interval(a), t_interval(b)
    assert lo_b < hi_a  # the two unpaired intervals overlap


def test_no_difference_and_reversed_verdicts():
    rng = np.random.default_rng(1)
    a = rng.normal(0.8, 0.02, size=6)
    same = paired_comparison(a, a + rng.normal(0, 0.01, size=6))
    assert same.ci_low < 0 < same.ci_high or not same.significant
    worse = paired_comparison(a, a - 0.05 + rng.normal(0, 0.001, size=6), name_a="A", name_b="B")
    assert worse.verdict == "A is better" and worse.ci_high < 0


def test_identical_differences_give_a_zero_width_interval():
    c = paired_comparison([0.5, 0.6], [0.5, 0.6])
    assert (c.mean_diff, c.ci_low, c.ci_high) == (0.0, 0.0, 0.0) and not c.significant


@pytest.mark.parametrize("a, b, match", [
    ([0.5], [0.6], "at least 2 seeds"),
    ([0.5, 0.6, 0.7], [0.5, 0.6], "one score per seed"),
    ([0.5, float("nan")], [0.5, 0.6], "NaN or inf"),
    ([[0.5, 0.6]], [[0.5, 0.6]], "one-dimensional"),
])
def test_bad_scores_are_explained(a, b, match):
    with pytest.raises(ValueError, match=match):
        paired_comparison(a, b)


def test_bad_arguments_are_explained():
    with pytest.raises(TypeError, match="sequence of numbers"):
        mean_std(["a", "b"])
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        paired_comparison([1, 2], [2, 3], confidence=95)
    with pytest.raises(ValueError, match="df must be"):
        t_quantile(0.975, 0)
