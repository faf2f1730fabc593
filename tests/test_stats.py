"""Interval, sample-size and stopping statistics, checked against scipy and known values."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from faults.common import stats


CASES = [(0, 1), (1, 1), (0, 10), (10, 10), (3, 10), (0, 1000), (1000, 1000), (1, 1000),
         (999, 1000), (17, 400), (250, 500), (5, 100000)]


@pytest.mark.parametrize("k,n", CASES)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_matches_scipy(k, n, confidence):
    ref = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    lo, hi = stats.wilson(k, n, confidence)
    assert lo == pytest.approx(ref.low, abs=1e-12)
    assert hi == pytest.approx(ref.high, abs=1e-12)


@pytest.mark.parametrize("k,n", CASES)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_clopper_pearson_matches_scipy(k, n, confidence):
    ref = binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    lo, hi = stats.clopper_pearson(k, n, confidence)
    assert lo == pytest.approx(ref.low, abs=1e-10)
    assert hi == pytest.approx(ref.high, abs=1e-10)


def test_known_values_at_the_edges():
    # 0 of n: Clopper-Pearson upper bound is 1 - (alpha/2)^(1/n) ("rule of three" region)
    lo, hi = stats.clopper_pearson(0, 100, 0.95)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 100), rel=1e-12)
    lo, hi = stats.clopper_pearson(100, 100, 0.95)
    assert hi == 1.0 and lo == pytest.approx(0.025 ** (1 / 100), rel=1e-12)
    # Wilson 0 of n: upper = z^2 / (n + z^2)
    z = stats.z_value(0.95)
    assert stats.wilson(0, 50)[1] == pytest.approx(z * z / (50 + z * z), rel=1e-12)
    assert stats.wilson(0, 0) == (0.0, 1.0)
    assert z == pytest.approx(1.959963984540054, rel=1e-12)


def test_interval_dispatch_and_errors():
    assert stats.interval(3, 10, method="cp") == stats.clopper_pearson(3, 10)
    assert stats.interval(3, 10, method="exact") == stats.clopper_pearson(3, 10)
    with pytest.raises(stats.StatsError, match="unknown interval method"):
        stats.interval(1, 2, method="normal")
    with pytest.raises(stats.StatsError, match="0 <= k <= n"):
        stats.wilson(5, 3)
    with pytest.raises(stats.StatsError, match="confidence"):
        stats.wilson(1, 3, 1.5)


def test_leveugle_sample_size():
    z = stats.z_value(0.95)
    # draws with replacement (the default, how campaigns draw): t^2 p(1-p) / e^2, no FPC
    assert stats.leveugle_sample_size(math.inf, 0.01) == math.ceil(z * z * 0.25 / 1e-4) == 9604
    N = 32 * 61706  # LeNet-5, SBF
    assert stats.leveugle_sample_size(N, 0.01) == 9604
    # the paper's formula (draws without replacement), by hand
    e = 0.01
    expected = N / (1 + e * e * (N - 1) / (z * z * 0.25))
    assert stats.leveugle_sample_size(N, e, with_replacement=False) == math.ceil(expected) == 9558
    # the cell: 192 faults at margin 0.05 -> 129 by the paper's formula; drawn with
    # replacement those 129 draws hit only ~94 distinct faults (N (1 - (1 - 1/N)^n), by hand)
    assert stats.leveugle_sample_size(192, 0.05, with_replacement=False) == 129
    assert 192 * (1 - (1 - 1 / 192) ** 129) == pytest.approx(94.1, abs=0.1)
    # with replacement the margin needs ceil(1.96^2 / 4 / 0.05^2) = 385 > 192: capped at N (enumerate)
    assert stats.leveugle_sample_size(math.inf, 0.05) == 385
    assert stats.leveugle_sample_size(192, 0.05) == 192
    assert stats.leveugle_sample_size(50, 0.01) == 50
    assert stats.leveugle_sample_size(1e6, 0.01, 0.99) > stats.leveugle_sample_size(1e6, 0.01, 0.95)
    # a smaller expected p needs fewer samples
    assert stats.leveugle_sample_size(math.inf, 0.01, p=0.1) == math.ceil(z * z * 0.09 / 1e-4)
    with pytest.raises(stats.StatsError):
        stats.leveugle_sample_size(100, 0.0)


def test_adaptive_stopping_rule():
    assert not stats.should_stop(0, 10, 0.05, min_trials=30)
    # Wilson half-width for 0/n is ~ z^2/(2(n+z^2)): 0/100 -> ~0.0185
    assert stats.should_stop(0, 100, 0.02)
    assert not stats.should_stop(50, 100, 0.02)
    hw = stats.half_width(50, 100)
    assert hw == pytest.approx((stats.wilson(50, 100)[1] - stats.wilson(50, 100)[0]) / 2)
    # n needed for p=0.5 at half-width 0.05 is ~ 385
    assert not stats.should_stop(190, 380, 0.05)
    assert stats.should_stop(195, 390, 0.05)


def test_clustered_rate_treats_fault_as_unit():
    # one input per fault: identical to the binomial interval
    y = np.array([1, 0, 0, 1, 0, 0, 0, 0, 0, 0] * 10)
    est = stats.clustered_rate(y, np.ones_like(y))
    assert (est.k, est.n) == (20, 100)
    assert (est.lo, est.hi) == pytest.approx(stats.wilson(20, 100))
    # 10 inputs per fault, perfectly correlated: as informative as 100 faults, not 1000 pairs
    est10 = stats.clustered_rate(y * 10, np.full_like(y, 10))
    assert est10.pvf == pytest.approx(0.2)
    naive = stats.wilson(200, 1000)
    assert est10.hi - est10.lo > 2 * (naive[1] - naive[0])
    assert (est10.lo, est10.hi) == pytest.approx(stats.wilson(20, 100), rel=0.05)
    assert (est10.lo, est10.hi) == pytest.approx(stats.clopper_pearson(20, 100), rel=0.05)
    # independent-looking clusters: design effect ~ 1
    rng = np.random.default_rng(0)
    yi = rng.binomial(10, 0.2, size=2000)
    esti = stats.clustered_rate(yi, np.full(2000, 10))
    ref = stats.wilson(int(yi.sum()), 20000)
    assert (esti.hi - esti.lo) == pytest.approx(ref[1] - ref[0], rel=0.1)
