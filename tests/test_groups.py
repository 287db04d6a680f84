"""Per-group statistics against hand-computed values."""

import math

import numpy as np
import pytest

from diag import groups as G
from diag.schema import ALL_FAIL, ALL_PASS, MIXED, TIED


def stats(rewards, G_=4, weights=None, passed=None, adv=None, group_ids=None, eps=1e-6, **kw):
    r = G.as_float_matrix(rewards)
    w = np.ones(r.shape[1]) if weights is None else np.asarray(weights, float)
    layout = G.group_layout(r.shape[0], G_, group_ids)
    b = G.Batch(r, w, layout, advantages=None if adv is None else np.asarray(adv, float),
                passed=None if passed is None else np.asarray(passed, bool), **kw)
    return b, G.group_stats(b, eps)


def test_signal_classes_with_verifier():
    rewards = [1, 0, 1, 0] + [0, 0, 0, 0] + [1, 1, 1, 1] + [0.5, 0.5, 0.5, 0.5]
    passed = [r >= 1 for r in rewards[:12]] + [True, False, True, False]
    _, gs = stats(rewards, passed=passed)
    assert list(gs["signal"]) == [MIXED, ALL_FAIL, ALL_PASS, TIED]
    assert list(gs["n_pass"]) == [2, 0, 4, 2]


def test_ties_without_verifier_are_tied_not_guessed():
    _, gs = stats([0, 0, 0, 0, 1, 1, 1, 1])
    assert list(gs["signal"]) == [TIED, TIED]
    assert gs["n_pass"] is None


def test_epsilon_decides_not_scaled_std():
    # spread 1e-9 is below eps: tied, although a scaled std (divided by ~0) would look huge
    _, gs = stats([0.3, 0.3 + 1e-9, 0.3, 0.3], eps=1e-6)
    assert gs["signal"][0] == TIED
    _, gs = stats([0.3, 0.3 + 1e-3, 0.3, 0.3], eps=1e-6)
    assert gs["signal"][0] == MIXED


def test_hand_computed_moments_and_advantages():
    rewards = [[1.0, 0.2], [0.0, 0.2], [1.0, 0.0], [0.0, 0.0]]
    adv = [1.0, -1.0, 1.0, -1.0]
    _, gs = stats(rewards, weights=[1.0, 0.5], adv=adv)
    totals = np.array([1.1, 0.1, 1.0, 0.0])
    assert gs["reward_mean"][0] == pytest.approx(totals.mean())
    assert gs["reward_std"][0] == pytest.approx(totals.std())  # population std
    assert gs["reward_min"][0] == pytest.approx(0.0) and gs["reward_max"][0] == pytest.approx(1.1)
    assert gs["func_mean"][0].tolist() == pytest.approx([0.5, 0.1])
    assert gs["func_std"][0].tolist() == pytest.approx([0.5, 0.1])
    assert gs["adv_var"][0] == pytest.approx(1.0)
    assert gs["adv_abs_mean"][0] == pytest.approx(1.0)
    assert gs["func_tied"][0].tolist() == [False, False]


def test_per_function_tie_detected_inside_a_mixed_group():
    # format reward saturated (all 0.5) while correctness varies: the group is mixed, format is tied
    _, gs = stats([[1, 0.5], [0, 0.5], [1, 0.5], [0, 0.5]])
    assert gs["signal"][0] == MIXED
    assert gs["func_tied"][0].tolist() == [False, True]


def test_none_and_nan_rewards_are_excluded_and_counted():
    rewards = [[1.0], [None], [0.0], [float("nan")]]
    b, gs = stats(rewards)
    assert gs["n_valid"][0] == 2 and gs["G"][0] == 4
    assert gs["reward_mean"][0] == pytest.approx(0.5)
    row = G.step_stats(b, gs)
    assert row["n_invalid"] == 2


def test_all_invalid_group_is_not_mixed_and_does_not_crash():
    _, gs = stats([[None], [None], [float("inf")], [float("-inf")]])
    assert gs["n_valid"][0] == 0
    assert math.isnan(gs["reward_mean"][0])
    assert gs["signal"][0] == TIED


def test_partial_function_none_uses_remaining_functions():
    # TRL sums with nansum: a completion is unscorable only when every function abstained
    total = G.total_reward(np.array([[1.0, np.nan], [np.nan, np.nan]]), np.array([1.0, 1.0]))
    assert total[0] == 1.0 and math.isnan(total[1])


def test_ragged_last_group():
    _, gs = stats([1, 0, 1, 0, 1, 1], G_=4)
    assert gs["G"].tolist() == [4, 2]
    assert gs["signal"][1] == TIED


def test_groups_by_id_split_across_processes():
    # two processes each hold half of every group: rank order interleaves them; ids rebuild groups
    ids = ["a", "a", "b", "b", "a", "a", "b", "b"]
    rewards = [1, 1, 0, 0, 1, 0, 0, 0]
    _, gs = stats(rewards, group_ids=ids, passed=[r > 0 for r in rewards])
    assert gs["G"].tolist() == [4, 4]
    assert gs["signal"].tolist() == [MIXED, ALL_FAIL]
    assert gs["reward_mean"].tolist() == pytest.approx([0.75, 0.0])


def test_step_stats_aggregate():
    rewards = [1, 0, 1, 0] + [0, 0, 0, 0] + [1, 1, 1, 1] + [0, 1, 0, 0]
    b, gs = stats(rewards, passed=[r > 0 for r in rewards], adv=[0.0] * 16, lengths=np.arange(16),
                  clipped=np.arange(16) >= 12)
    row = G.step_stats(b, gs)
    assert row["frac_all_fail"] == 0.25 and row["frac_all_pass"] == 0.25 and row["frac_tied"] == 0.0
    assert row["frac_zero_signal"] == 0.5
    assert row["effective_batch"] == 8
    assert row["reward_mean"] == pytest.approx(7 / 16)
    assert row["len_mean"] == pytest.approx(7.5)
    assert row["frac_clipped"] == pytest.approx(0.25)


def test_dead_share_matches_trl_under_group_scaling():
    """Our all-fail + all-pass + tied share equals TRL's frac_reward_zero_std under group scaling."""
    rng = np.random.default_rng(0)
    r = (rng.random((32, 8)) < rng.random((32, 1)) ** 3).astype(float)
    b, gs = stats(r.reshape(-1), G_=8, passed=r.reshape(-1) > 0)
    ours = G.step_stats(b, gs)["frac_zero_signal"]
    trl_like = float((r.std(axis=1, ddof=1) == 0).mean())
    assert ours == pytest.approx(trl_like)


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="group_ids has 3 entries for 4"):
        G.group_layout(4, None, ["a", "b", "c"])
    with pytest.raises(ValueError, match="group_size must be a positive integer"):
        G.group_layout(4, 0)


def test_format_reward_makes_failing_groups_mixed_and_no_pass_counts_them():
    """Verifier + format bonus: a group where every answer is wrong but the format varies is "mixed"
    (its advantages train the format) and still has no completion that passes the task."""
    correct = [0, 0, 0, 0] + [1, 0, 0, 0]
    fmt = [0.2, 0.0, 0.2, 0.0] + [0.2, 0.2, 0.2, 0.2]
    rewards = np.column_stack([correct, fmt])
    b, gs = stats(rewards, passed=np.asarray(correct) > 0.5)
    assert list(gs["signal"]) == [MIXED, MIXED]
    row = G.step_stats(b, gs)
    assert row["frac_all_fail"] == 0.0 and row["frac_zero_signal"] == 0.0
    assert row["frac_no_pass"] == 0.5
    _, gs = stats([0, 0, 1, 1])  # no verifier: unknown, not guessed
    assert math.isnan(G.step_stats(G.Batch(G.as_float_matrix([0, 0, 1, 1]), np.ones(1), G.group_layout(4, 4, None)),
                                   gs)["frac_no_pass"])
