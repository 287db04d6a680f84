"""Pre-flight probe: estimators by hand, recommendations, and the prediction against real GRPO steps."""

from math import comb

import numpy as np
import pytest

from diag.probe import all_fail_share, analyse, dead_share_plugin, dead_share_unbiased


def test_unbiased_estimate_by_hand():
    assert dead_share_unbiased(0, 16, 8) == 1.0
    assert dead_share_unbiased(16, 16, 8) == 1.0
    assert dead_share_unbiased(4, 16, 8) == pytest.approx((0 + comb(12, 8)) / comb(16, 8))
    with pytest.raises(ValueError, match="k >= G"):
        dead_share_unbiased(1, 4, 8)


def test_unbiased_matches_truth_and_plugin_is_biased_up():
    """Monte Carlo: the unbiased estimate averages to p^G + (1-p)^G; the plug-in overestimates."""
    rng = np.random.default_rng(0)
    p, k, G = 0.2, 16, 8
    c = rng.binomial(k, p, size=20000)
    truth = p**G + (1 - p) ** G
    assert np.mean([dead_share_unbiased(int(x), k, G) for x in c]) == pytest.approx(truth, abs=0.01)
    assert np.mean([dead_share_plugin(int(x), k, G) for x in c]) > truth + 0.03


def test_recommendations():
    weak = analyse([[False] * 16] * 80 + [[True] + [False] * 15] * 20, "m", "t")
    assert weak.recommendation.startswith("SFT warm-start") and weak.share_never_solved == 0.8
    mid = analyse([[True] + [False] * 15] * 50, "m", "t")  # G=8 dead share 0.5, G=16 none
    assert mid.recommendation.startswith("use a larger group")
    easy = analyse([[True] * 8 + [False] * 8] * 50, "m", "t")
    assert easy.recommendation.startswith("go ahead")
    assert easy.method[32].startswith("plug-in") and easy.method[8] == "unbiased"
    assert all_fail_share(0, 16, 8) == 1.0


@pytest.mark.slow
@pytest.mark.xdist_group("demo")
@pytest.mark.parametrize("name, base", [("weak-signal-gap", "weak"), ("strong-healthy", "strong")])
def test_probe_predicts_first_20_steps(demo_runs, name, base):
    """The probe's predicted zero-signal share (G=8) within 0.1 of the share measured over the first
    20 GRPO steps of the same (shipped) base and task."""
    import diag
    from training.probe import run_probe

    res = run_probe(f"base:{base}", "add2", prompts=200, k=16, G=8)
    measured = diag.open_run(demo_runs / name).steps.sort("step").head(20)["frac_zero_signal"].mean()
    assert abs(res.dead_share[8] - measured) <= 0.1
