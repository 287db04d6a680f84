"""Each statistic against scipy or hand-computed values."""

import math

import numpy as np
import pytest
from scipy import stats as st

from diag import stats


def test_theil_sen_matches_scipy_and_recovers_slope():
    rng = np.random.default_rng(0)
    x = np.arange(50.0)
    y = 0.3 * x + 2 + rng.normal(0, 1, 50)
    t = stats.theil_sen(x, y)
    ref = st.theilslopes(y, x, alpha=0.95)
    assert t.slope == pytest.approx(ref.slope) and t.lo == pytest.approx(ref.low_slope)
    assert t.slope == pytest.approx(0.3, abs=0.05) and t.lo <= t.slope <= t.hi and t.significant_up


def test_theil_sen_degenerate():
    assert math.isnan(stats.theil_sen([1, 2], [1, 2]).slope)
    assert math.isnan(stats.theil_sen([1, 1, 1], [1, 2, 3]).slope)
    t = stats.theil_sen([0, 1, 2, float("nan"), 4], [0, 1, 2, 3, 4])
    assert t.n == 4 and t.slope == pytest.approx(1.0)


def test_mann_kendall_hand_computed():
    # y = [1, 3, 2, 4]: concordant pairs 5, discordant 1 -> S = 4; var = 4*3*13/18 = 26/3
    mk = stats.mann_kendall([1, 3, 2, 4])
    assert mk.s == 4
    z = (4 - 1) / math.sqrt(26 / 3)
    assert mk.z == pytest.approx(z) and mk.p == pytest.approx(2 * st.norm.sf(z))
    assert mk.tau == pytest.approx(4 / 6)


def test_mann_kendall_tau_matches_kendalltau_without_ties():
    rng = np.random.default_rng(1)
    y = rng.normal(size=30) + np.linspace(0, 2, 30)
    mk = stats.mann_kendall(y)
    assert mk.tau == pytest.approx(st.kendalltau(np.arange(30), y).statistic)


def test_mann_kendall_ties_reduce_variance():
    mk = stats.mann_kendall([1, 1, 2, 2, 3, 3])
    # ties: three groups of two -> var = (6*5*17 - 3*2*1*9)/18 = (510 - 54)/18
    assert mk.s == 12
    assert mk.z == pytest.approx((12 - 1) / math.sqrt(456 / 18))
    assert stats.mann_kendall([2, 2, 2, 2]).p == 1.0


def test_rank_correlation_matches_scipy_with_bootstrap_interval():
    rng = np.random.default_rng(2)
    x = rng.normal(size=40)
    y = x + rng.normal(0, 0.5, 40)
    for method, fn in (("spearman", st.spearmanr), ("kendall", st.kendalltau)):
        c = stats.rank_correlation(x, y, method=method, n_boot=500)
        ref = fn(x, y)
        assert c.r == pytest.approx(ref.statistic) and c.p == pytest.approx(ref.pvalue)
        assert c.lo < c.r < c.hi and c.n == 40
    assert math.isnan(stats.rank_correlation([1, 2], [2, 1]).r)
    assert math.isnan(stats.rank_correlation([1, 1, 1], [1, 2, 3]).r)


def test_mcnemar_exact_by_hand():
    a = [1] * 10 + [0] * 2 + [1] * 5 + [0] * 3
    b = [0] * 10 + [1] * 2 + [1] * 5 + [0] * 3
    only_a, only_b, p = stats.mcnemar(a, b)
    assert (only_a, only_b) == (10, 2)
    # two-sided exact binomial: 2 * P(X <= 2 | n=12, 1/2)
    assert p == pytest.approx(2 * sum(math.comb(12, k) for k in range(3)) / 2**12)
    assert stats.mcnemar([1, 0], [1, 0])[2] == 1.0
    with pytest.raises(ValueError, match="differ in size"):
        stats.mcnemar([1], [1, 0])


def test_paired_compare_interval_covers_difference():
    rng = np.random.default_rng(3)
    a = rng.random(400) < 0.6
    b = a.copy()
    flip = rng.choice(400, 60, replace=False)
    b[flip] = False
    r = stats.paired_compare(a, b)
    assert r.diff == pytest.approx(b.mean() - a.mean())
    assert r.lo <= r.diff <= r.hi and r.hi < 0 and r.p < 1e-6


def test_paired_drop_p_against_scipy():
    rng = np.random.default_rng(4)
    before = rng.random(100)
    after = before - 0.05 + rng.normal(0, 0.1, 100)
    assert stats.paired_drop_p(before, after) == pytest.approx(
        st.ttest_rel(after, before, alternative="less").pvalue)
    assert stats.paired_drop_p([1, 1], [0, 0]) == 0.0
    assert stats.paired_drop_p([0, 0], [1, 1]) == 1.0


def test_two_proportion_p():
    p = stats.two_proportion_p(0.6, 300, 0.5, 300)
    pooled = 0.55
    z = 0.1 / math.sqrt(pooled * 0.45 * (2 / 300))
    assert p == pytest.approx(2 * st.norm.sf(z))
    assert stats.two_proportion_p(0.5, 0, 0.4, 10) == 1.0


def test_page_hinkley_finds_onset_of_drop():
    rng = np.random.default_rng(5)
    x = np.concatenate([0.6 + rng.normal(0, 0.01, 30), 0.6 - 0.01 * np.arange(1, 31) + rng.normal(0, 0.01, 30)])
    onset = stats.page_hinkley_onset(x, delta=0.005, threshold=0.1)
    assert onset is not None and 25 <= onset <= 35
    assert stats.page_hinkley_onset(0.6 + rng.normal(0, 0.01, 100), threshold=0.2) is None


def test_cusum_down():
    assert stats.cusum_down([1, 1, 0.5, 0.5, 1]).tolist() == [0, 0, 0.5, 1.0, 1.0]


def test_bootstrap_mean_ci():
    lo, hi = stats.bootstrap_mean_ci(np.arange(100.0))
    assert lo < 49.5 < hi
    assert all(math.isnan(v) for v in stats.bootstrap_mean_ci([]))


def test_theil_sen_equals_scipy_on_many_series_with_ties():
    rng = np.random.default_rng(7)
    for n in (3, 4, 5, 8, 20, 50):
        for _ in range(20):
            x = np.sort(rng.integers(0, 30, n)).astype(float)  # repeated x values: ties
            y = np.round(rng.normal(size=n) + 0.01 * x, 1)  # repeated y values too
            if np.ptp(x) == 0:
                continue
            ref = st.theilslopes(y, x, alpha=0.95)
            t = stats.theil_sen(x, y)
            assert [t.slope, t.intercept, t.lo, t.hi] == pytest.approx(
                [ref.slope, ref.intercept, ref.low_slope, ref.high_slope])


def test_theil_sen_constant_series_matches_scipy():
    x, y = np.arange(8.0), np.full(8, 0.5)
    ref = st.theilslopes(y, x, alpha=0.95)
    t = stats.theil_sen(x, y)
    assert [t.slope, t.lo, t.hi] == pytest.approx([ref.slope, ref.low_slope, ref.high_slope])
