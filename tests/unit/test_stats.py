"""Bootstrap medians, ratio CIs, geomeans and the Mann-Whitney U test give the textbook answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from farm.analysis.stats import (BootstrapOptions, geomean, geomean_replicates, grouped_medians, mann_whitney,
                                 median_ci, percentile_ci)


@pytest.mark.parametrize("n", [1, 2, 7, 8, 31])
def test_order_statistic_bootstrap_matches_plain_resampling(n):
    rng = np.random.default_rng(n)
    x = rng.lognormal(0.0, 0.3, n)
    fast = grouped_medians(x, np.zeros(n, dtype=np.int64), 1, BootstrapOptions(replicates=40000)).replicates[0]
    plain = np.median(x[rng.integers(0, n, (40000, n))], axis=1)
    qs = [0.025, 0.1, 0.4, 0.6, 0.9, 0.975]
    # Both draw from one discrete distribution over the sample's (pairs of) values.
    assert np.allclose(np.quantile(fast, qs), np.quantile(plain, qs), rtol=0.02)
    assert abs(fast.mean() - plain.mean()) < 0.01 * plain.mean()


def test_grouped_medians_handle_many_groups_empty_groups_and_nans():
    values = np.array([3.0, 1.0, 2.0, np.nan, 10.0, 20.0])
    groups = np.array([0, 0, 0, 0, 2, 2])
    gm = grouped_medians(values, groups, 3)
    assert gm.median[0] == 2.0 and math.isnan(gm.median[1]) and gm.median[2] == 15.0
    assert list(gm.n) == [3, 0, 2]
    lo, hi = gm.ci()
    assert 1.0 <= lo[0] <= 2.0 <= hi[0] <= 3.0 and math.isnan(lo[1])
    assert 10.0 <= lo[2] <= hi[2] <= 20.0


def test_median_ci_covers_the_true_median_about_95_percent_of_the_time():
    rng = np.random.default_rng(5)
    hits = 0
    for _ in range(300):
        _, lo, hi = median_ci(rng.lognormal(0.0, 0.2, 25), BootstrapOptions(replicates=400, seed=int(rng.integers(1 << 30))))
        hits += lo <= 1.0 <= hi
    assert 0.88 <= hits / 300 <= 0.995


def test_ratio_and_geomean_replicates():
    reps = np.array([[2.0, 2.0, 2.0], [8.0, 8.0, 8.0], [np.nan, 1.0, 1.0]])
    assert np.allclose(geomean_replicates(reps), 4.0)  # the row with a NaN is left out
    assert geomean([2.0, 8.0, -1.0, np.nan]) == pytest.approx(4.0)
    lo, hi = percentile_ci(np.arange(101.0)[None, :])
    assert lo[0] == pytest.approx(2.5) and hi[0] == pytest.approx(97.5)


def test_mann_whitney_exact_small_samples():
    r = mann_whitney([1, 2, 3], [4, 5, 6])
    assert r.u == 0 and r.p == pytest.approx(0.1) and r.effect == 0.0  # 2 / C(6,3)
    r = mann_whitney([4, 5, 6, 7], [1, 2, 3])
    assert r.u == 12 and r.p == pytest.approx(2 / 35) and r.effect == 1.0
    r = mann_whitney([1, 3, 5], [2, 4, 6])
    assert r.u == 3 and r.p == pytest.approx(0.7)  # P(U <= 3) = 7/20, two-sided 0.7


def test_mann_whitney_normal_approximation_agrees_with_exact_and_handles_ties():
    rng = np.random.default_rng(2)
    x, y = rng.normal(0, 1, 18), rng.normal(0.8, 1, 20)
    exact = mann_whitney(x, y)  # 360 pairs: exact
    approx = mann_whitney(np.concatenate([x, x]), np.concatenate([y, y]))  # ties: normal approximation
    assert exact.p < 0.05 and approx.p < exact.p
    same = mann_whitney([1.0] * 10, [1.0] * 10)
    assert same.p == 1.0 and same.effect == 0.5
    assert math.isnan(mann_whitney([], [1.0]).p)
