"""analytics.statistics against published values: intervals, distributions and the SRM check."""

from __future__ import annotations

import math
import random

import pytest

from analytics import statistics


@pytest.mark.parametrize(
    ("df", "quantile"),
    [(1, 12.706205), (5, 2.570582), (10, 2.228139), (30, 2.042272), (1e7, 1.959964)],
)
def test_t_quantile_matches_tables(df, quantile):
    assert statistics.t_quantile(0.975, df) == pytest.approx(quantile, abs=1e-5)


@pytest.mark.parametrize(
    ("x", "df", "p"),
    [(3.841459, 1, 0.05), (5.991465, 2, 0.05), (16.266236, 3, 0.001), (0.5, 4, 0.973501)],
)
def test_chi_square_survival_matches_tables(x, df, p):
    assert statistics.chi_square_sf(x, df) == pytest.approx(p, rel=1e-5)


def test_chi_square_survival_with_one_degree_is_erfc():
    for x in (0.01, 1.0, 10.83, 40.0):
        assert statistics.chi_square_sf(x, 1) == pytest.approx(math.erfc(math.sqrt(x / 2)))
    assert statistics.chi_square_sf(0, 3) == 1.0


def test_wilson_interval_matches_newcombe():
    # Newcombe (1998), Statistics in Medicine 17: 81/263 -> 0.2553 to 0.3662.
    low, high = statistics.wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert statistics.wilson_interval(0, 10)[0] == 0.0


def test_newcombe_difference_matches_the_paper(monkeypatch):
    # Newcombe (1998), method 10: 56/70 - 48/80 = 0.2000, 95% CI 0.0524 to 0.3339.
    interval = statistics.proportion_difference(
        successes=56, n=70, control_successes=48, control_n=80
    )
    assert interval.difference == pytest.approx(0.2)
    assert (round(interval.low, 4), round(interval.high, 4)) == (0.0524, 0.3339)
    assert interval.significant


def test_no_interval_below_the_minimum():
    assert statistics.MIN_RATED_PER_ARM == 30 and statistics.MIN_QUERIES_PER_ARM == 30
    assert (
        statistics.proportion_difference(successes=29, n=29, control_successes=0, control_n=30)
        is None
    )
    assert statistics.welch_difference([1.0] * 29, [2.0] * 40) is None
    assert statistics.welch_difference([1.0] * 30, [2.0] * 30) is not None


def test_welch_interval_by_hand():
    a = [float(v) for v in range(1, 41)]  # mean 20.5, variance 136.667
    b = [float(2 * v) for v in range(1, 31)]  # mean 31, variance 310
    interval = statistics.welch_difference(a, b)
    va, vb = 136.66666666666666 / 40, 310 / 30
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / 39 + vb**2 / 29)
    half = statistics.t_quantile(0.975, df) * se
    assert interval.difference == pytest.approx(-10.5)
    assert (interval.low, interval.high) == (
        pytest.approx(-10.5 - half),
        pytest.approx(-10.5 + half),
    )
    # Fewer degrees of freedom than a pooled test: wider than the normal interval.
    assert half > 1.959964 * se
    constant = statistics.welch_difference([2.0] * 30, [1.0] * 30)
    assert (constant.low, constant.difference, constant.high) == (1.0, 1.0, 1.0)


def test_welch_interval_covers_the_true_difference_about_95_percent():
    rng = random.Random(7)
    covered = 0
    for _ in range(400):
        a = [rng.expovariate(1 / 3) for _ in range(40)]  # mean 3, skewed like cost
        b = [rng.gauss(2, 0.5) for _ in range(60)]
        interval = statistics.welch_difference(a, b)
        covered += interval.low <= 1 <= interval.high
    assert 0.91 <= covered / 400 <= 0.98


def test_sample_ratio_against_weights():
    even = statistics.sample_ratio(observed=[500, 500], weights=[50, 50])
    assert (even.chi_square, even.p_value, even.mismatch) == (0.0, 1.0, False)
    # 3 arms at 2:1:1 (expecting 500/250/250) observed 550/220/230: 5 + 3.6 + 1.6 on 2 df.
    skewed = statistics.sample_ratio(observed=[550, 220, 230], weights=[2, 1, 1])
    assert skewed.degrees_of_freedom == 2
    assert skewed.chi_square == pytest.approx(10.2)
    assert skewed.p_value == pytest.approx(math.exp(-10.2 / 2))  # df=2: exactly exp(-x/2)
    assert not skewed.mismatch  # p = 0.006: unusual, not alarming
    broken = statistics.sample_ratio(observed=[560, 180, 260], weights=[2, 1, 1])
    assert broken.p_value < statistics.SRM_P_VALUE and broken.mismatch
    assert statistics.sample_ratio(observed=[0, 0], weights=[1, 1]) is None
    # A zero-weight arm expects nothing: it is left out, not a division by zero.
    assert statistics.sample_ratio(observed=[10, 0], weights=[1, 0]) is None
