"""check's verdict on a short run judged again with the whole run's noise between evaluations
(diag.detect.hindsight): what the live scan could not know at the fifth evaluation."""

import numpy as np

from diag import schema
from diag.detect import align, detect_all, detect_decoupling
from diag.detect.decoupling import DecouplingParams
from diag.detect.hindsight import hindsight
from diag.detect.levels import spread_sigma
from diag.detect.run import DetectParams
from tests.test_detect import steps_frame

# A healthy run on 5,000 items whose checkpoints vary by ~1.2 points (no eval size shows it): steps 80-100
# sit 3 points under steps 40-60 by chance. The first nine evaluations put the spread at 0.5-0.7 points.
WOBBLY = [74.42, 74.42, 74.56, 75.6, 75.84, 76.48, 75.06, 73.64, 73.36, 72.22, 74.32, 73.6, 73.26, 77.1, 75.1,
          76.44, 73.52, 76.0, 74.7, 75.6, 76.48, 75.98]


def _aligned(acc, n=5000, seed=0):
    ev = schema.conform("evals", [{"step": 10 * (k + 1), "eval_set": "heldout", "metric": "accuracy", "bucket": "all",
                                   "value": v / 100, "n": n} for k, v in enumerate(acc)])
    reward = 0.5 + np.random.default_rng(seed).normal(0, 0.02, 10 * len(acc))
    return align(steps_frame(reward), ev, None, ["r"]), ev, reward


def test_a_live_alert_the_whole_runs_noise_does_not_confirm_is_withdrawn_not_dropped():
    a, _, _ = _aligned(WOBBLY)
    live = [f for f in detect_decoupling(a) if f.kind == "decoupling"]
    assert live and live[0].is_alert  # what the monitor said at the time
    judged = [f for f in hindsight(a, live, DecouplingParams()) if f.kind == "decoupling"]
    assert judged and not any(f.is_alert for f in judged)
    assert all(f.evidence["withdrawn"] and f.evidence["live_severity"] == live[0].severity for f in judged)
    assert all("Withdrawn at the end" in f.message for f in judged)


def test_check_gives_the_hindsight_verdict_and_the_monitor_the_live_one():
    a, ev, reward = _aligned(WOBBLY)
    run = type("R", (), {"steps": steps_frame(reward), "evals": ev, "eval_items": schema.empty("eval_items"),
                         "groups": schema.empty("groups"), "meta": {"reward_funcs": ["r"]}})()
    assert not [f for f in detect_all(run) if f.kind == "decoupling" and f.is_alert]
    live = DetectParams(decoupling=DecouplingParams(hindsight=False))
    assert [f for f in detect_all(run, live) if f.kind == "decoupling" and f.is_alert]


def test_longer_runs_and_runs_too_short_keep_the_live_verdict():
    p = DecouplingParams(history=10)
    a, _, _ = _aligned(WOBBLY)  # 22 evaluations > history
    live = detect_decoupling(a, p)
    assert hindsight(a, live, p) == live
    short, _, _ = _aligned(WOBBLY[:4])
    assert hindsight(short, detect_decoupling(short), DecouplingParams()) == detect_decoupling(short)


def test_the_spread_spans_no_cut():
    """The noise for a level over evaluations start..k is estimated on both sides of it, no second
    difference spanning its fall or its recovery: shifting the level by any amount leaves it unchanged."""
    y = np.random.default_rng(1).normal(0, 1.0, 20)
    shifted = y.copy()
    shifted[8:12] -= 2.5
    assert spread_sigma(shifted, cut=(8, 12)) == spread_sigma(y, cut=(8, 12))
    assert spread_sigma(shifted, cut=8) != spread_sigma(y, cut=8)


# 12 evaluations level at ~60% on 500 items, then 5 that sit 5.6 points lower: about 2.8 standard errors after the
# selection correction, under the 3.0 the live scan asks at every evaluation, over the end-of-run look's z_end.
LEVEL = [60.0, 60.6, 59.5, 60.3, 59.8, 60.4, 59.7, 60.2, 60.5, 59.6, 60.1, 59.9]
ENDS_LOW = LEVEL + [60 - 5.6 + x for x in (0.3, -0.2, 0.1, -0.3, 0.1)]


def test_a_run_that_ends_below_its_best_under_a_holding_reward_ends_decoupled():
    """One look at the end asks less than a scan that looks at every evaluation: the live monitor says nothing,
    check's verdict is a firing warning, marked as the end look's, with the numbers between the thresholds."""
    a, ev, reward = _aligned(ENDS_LOW, n=500)
    p = DecouplingParams()
    live = detect_decoupling(a, p)
    assert not [f for f in live if f.kind == "decoupling" and f.is_alert]
    found = [f for f in hindsight(a, live, p) if f.kind == "decoupling" and f.is_alert]
    assert len(found) == 1 and found[0].firing and found[0].severity == "warning"
    f = found[0]
    assert f.evidence["end_look"] and p.z_end <= f.evidence["z"] < p.z_warn
    assert "end-of-run look" in f.message and f.evidence["trend"] in ("held", "rose", "fell less")
    assert not [g for g in hindsight(a, live, DecouplingParams(z_end=None)) if g.kind == "decoupling" and g.is_alert]


def test_the_end_look_says_nothing_on_a_collapse_or_beside_a_firing_episode():
    a, ev, reward = _aligned(ENDS_LOW, n=500)
    falls = reward.copy()
    falls[120:] *= 0.88  # the reward loses a share like accuracy's (9%): a collapse, not a deceptive reward
    collapse = align(steps_frame(falls), ev, None, ["r"])
    assert not [f for f in hindsight(collapse, detect_decoupling(collapse), DecouplingParams())
                if f.kind == "decoupling" and f.is_alert]
    deeper, _, _ = _aligned(LEVEL + [60 - 9 + x for x in (0.3, -0.2, 0.1, -0.3, 0.1)], n=500)
    found = [f for f in hindsight(deeper, detect_decoupling(deeper), DecouplingParams())
             if f.kind == "decoupling" and f.is_alert]
    assert len(found) == 1 and found[0].firing and not found[0].evidence.get("end_look")  # the scan's own episode
