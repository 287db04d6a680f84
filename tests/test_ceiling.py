"""The clairvoyant ceiling of the generated shapes (benchmarks/ceiling.py): its statistic is the largest
standardised gap between a best block of three and any final stretch, and it calibrates as it says."""

import itertools
import math
import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import ceiling  # noqa: E402
import shapes  # noqa: E402


def brute(y, sd, width=3, longest=None):
    """The largest z of a best block over a later final stretch (longest None) or any later stretch of at most
    `longest` evaluations, every pair tried."""
    best = -math.inf
    for i, j in itertools.product(range(len(y)), range(len(y))):
        if i + width > j:
            continue
        for end in ([len(y)] if longest is None else range(j + 1, min(len(y), j + longest) + 1)):
            b, vb = np.mean(y[i:i + width]), np.sum(np.square(sd[i:i + width])) / width ** 2
            c, vc = np.mean(y[j:end]), np.sum(np.square(sd[j:end])) / (end - j) ** 2
            best = max(best, (b - c) / math.sqrt(vb + vc))
    return best


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=4, max_size=20), st.floats(0.005, 0.1))
def test_the_statistics_are_the_largest_gaps_over_every_block_and_stretch(values, sd):
    """The end statistic over final stretches, the dip's over any stretch of one to five evaluations."""
    y = np.array(values)
    s = np.full(len(y), sd) * np.linspace(0.8, 1.2, len(y))  # unequal noise per evaluation
    assert math.isclose(ceiling.end_statistic(y, s), brute(y, s), rel_tol=1e-9, abs_tol=1e-9)
    assert math.isclose(ceiling.dip_statistic(y, s), brute(y, s, longest=5), rel_tol=1e-9, abs_tol=1e-9)


def test_each_generated_run_carries_its_true_noise_and_a_fall_stands_out_of_it():
    run, truth = shapes.make_shape_run("flat_fall", 700_000)
    sd = np.asarray(truth["eval_sd"])
    assert len(sd) == run.evals.height and np.all(sd > 0)
    # calibrated at 1% on healthy runs, the threshold sits where the maximum of many normal tests does, and
    # falls of 3-6 sd stand out of it on most runs (the generator draws them so)
    out = ceiling.ceiling(n_runs=20, seed=3, healthy_runs=200)
    assert 2.5 < out["threshold"] < 5.0
    assert all(out[s] >= 0.8 for s in ceiling.FALLS)
    assert out["dip_threshold"] >= out["threshold"] - 0.5 and 0 <= out["dip"] <= 1  # more stretches, a higher bar


def test_the_clairvoyant_live_test_is_calibrated_and_finds_the_tiny_falls():
    """live_statistic at each evaluation is the largest z of a best block of three over the last one to six
    evaluations (checked by brute force on one run); calibrated on healthy runs it crosses on most tiny
    falls, after the onset, within a few evaluations."""
    import detection

    run, _ = detection.make_run("healthy", 4)
    y = run.evals.sort("step")["value"].to_numpy()
    var = (run.oracle * (1 - run.oracle)).sum(axis=1) / run.oracle.shape[1] ** 2
    z = ceiling.live_statistic(y, var)
    for k in (5, len(y) - 1):
        want = max((np.mean(y[i:i + 3]) - np.mean(y[k + 1 - m:k + 1]))
                   / math.sqrt(np.sum(var[i:i + 3]) / 9 + np.sum(var[k + 1 - m:k + 1]) / m ** 2)
                   for m in range(1, 7) for i in range(0, k + 1 - m - 3 + 1) if k + 1 - m >= 3)
        assert math.isclose(z[k], want, rel_tol=1e-9)
    out = ceiling.tiny_delays(n_runs=20, seed=5, healthy_runs=100)
    assert 2.5 < out["threshold"] < 5.0 and out["found"] >= 0.8 and 1 <= out["median_delay"] <= 8
