"""The level statistics under the decoupling verdict: selection bias, noise, margin (diag.detect.levels)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from diag.detect.levels import (PAIRED, SIZES, SPREAD, best_block, cohens_h, current_drop, expected_max, level_drop,
                                spread_sigma)


def test_expected_maximum_of_normals():
    assert expected_max(1) == 0.0
    assert expected_max(2) == pytest.approx(1 / np.sqrt(np.pi), abs=1e-3)  # 0.5642
    assert expected_max(10) == pytest.approx(1.5388, abs=1e-3)
    assert all(expected_max(m) < expected_max(m + 1) for m in range(1, 30))


def test_cohens_h_is_one_margin_at_every_level():
    """The same h is a smaller difference near 0 or 1 than at 0.5: points matter more at the edges."""
    assert cohens_h(0.5, 0.5) == 0.0 and cohens_h(0.6, 0.5) == -cohens_h(0.5, 0.6)
    at_half, at_tenth = 0.525 - 0.5, 0.1 - 0.0855
    assert cohens_h(0.525, 0.5) == pytest.approx(cohens_h(0.1, 0.1 - at_tenth), abs=0.01)
    assert at_tenth < at_half


def test_spread_ignores_a_trend_and_a_step_but_not_noise():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.01, 30)
    trend = np.linspace(0.3, 0.7, 30)
    step = np.where(np.arange(30) < 15, 0.8, 0.6)
    s_noise, dof = spread_sigma(0.5 + noise)
    assert 0.006 < s_noise < 0.015 and dof > 8
    assert spread_sigma(trend + noise)[0] == pytest.approx(s_noise, rel=0.25)
    assert spread_sigma(step + noise)[0] < 0.02  # a 20-point drop is not taken for noise
    assert np.isnan(spread_sigma([0.5, 0.6, 0.7, 0.6])[0])  # too few evaluations to say


@settings(max_examples=60, deadline=None)
@given(hs.integers(6, 40), hs.floats(0.05, 0.95), hs.integers(0, 10_000))
def test_a_flat_series_is_never_judged_far_below_its_best(k, level, seed):
    """Under no change, the drop test's z stays in a normal band however the best block was picked."""
    rng = np.random.default_rng(seed)
    n = 500
    acc = rng.binomial(n, level, k) / n
    d = current_drop(acc, np.full(k, float(n)), {}, k - 1, 3, 3)
    assert d is None or d.z < 5.0


def test_selection_correction_grows_with_contenders():
    """A long plateau has many blocks that could have been the best: its best is lowered more than a
    sharp peak's, where one block stands out."""
    n = np.full(40, 1000.0)
    plateau = np.full(40, 0.6)
    plateau[::2] += 0.01
    peak = np.full(40, 0.4)
    peak[10:13] = 0.6
    for series in (plateau, peak):
        series[-3:] = 0.5
    flat = level_drop(plateau, n, {}, best_block(plateau, 37, 3), [37, 38, 39], 39)
    sharp = level_drop(peak, n, {}, best_block(peak, 37, 3), [37, 38, 39], 39)
    assert flat.contenders > 3 and flat.bias > 0
    assert sharp.contenders == 1 and sharp.bias == 0.0


def test_noise_source_is_said():
    rng = np.random.default_rng(1)
    acc = 0.7 + rng.normal(0, 0.004, 12)
    acc[-3:] -= 0.05
    items = {i: rng.random(2000) < a for i, a in enumerate(acc)}
    assert current_drop(acc, np.full(12, 2000.0), items, 11, 3, 3).noise == PAIRED
    assert current_drop(acc, np.full(12, 2000.0), {}, 11, 3, 3).noise == SIZES
    assert current_drop(acc, np.full(12, np.nan), {}, 11, 3, 3).noise == SPREAD
    # checkpoints that vary far more than 2,000 items can: the spread between evaluations takes over
    wobbly = 0.7 + rng.normal(0, 0.03, 30)
    assert current_drop(wobbly, np.full(30, 2000.0), {}, 29, 3, 3).noise == SPREAD


def test_the_calibration_table_is_the_simulation():
    """diag.detect.d2_table (read instead of simulating at each check) holds what the simulation gives."""
    from diag.detect.d2_table import TABLE
    from diag.detect.levels import CALIBRATED, simulate_d2_calibration

    assert sorted(TABLE) == list(range(1, CALIBRATED + 1))
    for m in (1, 2, 3, 7, 20, 61, 62, 63, 150, CALIBRATED):
        assert TABLE[m] == simulate_d2_calibration(m)
