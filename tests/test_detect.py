"""Detectors on constructed series, and on the demo runs."""

import numpy as np
import polars as pl
import pytest

from diag import schema
from diag.detect import align, best_checkpoint, detect_all, detect_decoupling, detect_signal_gap
from diag.detect.signal_gap import dead_share_at


def steps_frame(reward, all_fail=None, funcs=None, length=None, clipped=None):
    n = len(reward)
    return pl.DataFrame({
        "step": np.arange(1, n + 1), "reward_mean": np.asarray(reward, float),
        "func_mean": [list(f) for f in (funcs if funcs is not None else np.asarray(reward)[:, None])],
        "frac_all_fail": np.asarray(all_fail if all_fail is not None else np.zeros(n), float),
        "frac_all_pass": np.zeros(n), "effective_batch": np.full(n, 32.0), "n_completions": np.full(n, 64.0),
        "len_mean": np.asarray(length if length is not None else np.full(n, 4.0), float),
        "frac_clipped": np.asarray(clipped if clipped is not None else np.zeros(n), float),
    })


def evals_frame(accs, every=10, n_items=300, seed=0, jitter=0.0):
    """Accuracy series with per-item correctness that persists between evaluations (`jitter`: each
    evaluation resamples items near their threshold, as a sampled evaluation does)."""
    rng = np.random.default_rng(seed)
    base = rng.random(n_items)
    evals, items = [], []
    for k, acc in enumerate(accs):
        correct = base + rng.normal(0, jitter, n_items) < acc  # the easiest items stay right as accuracy moves
        evals.append({"step": k * every, "eval_set": "heldout", "metric": "accuracy", "bucket": "all",
                      "value": float(correct.mean()), "n": n_items})
        items += [{"step": k * every, "eval_set": "heldout", "item": i, "bucket": "all", "correct": bool(c)}
                  for i, c in enumerate(correct)]
    return schema.conform("evals", evals), schema.conform("eval_items", items)


def test_falling_accuracy_with_rising_reward_fires_with_peak_onset_and_component():
    n = 200
    reward = np.linspace(0.3, 0.6, n)
    funcs = np.stack([np.full(n, 0.2), reward - 0.2], axis=1)  # the rise runs through the second function
    length = np.where(np.arange(n) > 50, 4 + 0.05 * (np.arange(n) - 50), 4.0)
    ev, items = evals_frame([0.5, 0.55, 0.6, 0.65, 0.7, 0.72, 0.7, 0.66, 0.6, 0.55, 0.5, 0.45, 0.4, 0.35, 0.3,
                             0.25, 0.2, 0.2, 0.2, 0.2, 0.2])
    a = align(steps_frame(reward, funcs=funcs, length=length), ev, items, ["format", "lenient"])
    found = detect_decoupling(a)
    assert [f.kind for f in found] == ["decoupling"]
    f = found[0]
    assert f.severity == "critical" and f.onset == 50  # the accuracy peak
    assert f.step <= 50 + 3 * 10 and f.firing
    assert f.evidence["carrier"] == "lenient" and "'lenient'" in f.message
    assert "completion length" in f.message
    assert f.evidence["test"] == "per-item results (paired)" and f.evidence["p"] < 1e-3


def test_falling_accuracy_with_falling_reward_is_not_decoupling():
    n = 200
    reward = np.linspace(0.6, 0.2, n)
    ev, items = evals_frame(np.linspace(0.7, 0.3, 21))
    assert detect_decoupling(align(steps_frame(reward), ev, items, ["r"])) == []


def test_healthy_rise_and_plateau_do_not_fire():
    n = 300
    t = np.arange(n)
    reward = 0.3 + 0.3 / (1 + np.exp(-(t - 100) / 20))
    acc = 0.4 + 0.3 / (1 + np.exp(-(np.arange(31) * 10 - 100) / 20))
    ev, items = evals_frame(acc)
    a = align(steps_frame(reward + np.random.default_rng(0).normal(0, 0.03, n)), ev, items, ["r"])
    assert [f for f in detect_decoupling(a) if f.is_alert] == []


def test_stall_carried_by_a_component_warns_and_names_it():
    """Reward up through its format component while accuracy stays flat: a stall warning naming 'format'."""
    n = 200
    fmt = np.linspace(0.1, 0.6, n)
    funcs = np.stack([np.full(n, 0.3), fmt], axis=1)
    ev, items = evals_frame([0.5] * 21)
    found = detect_decoupling(align(steps_frame(funcs.sum(axis=1), funcs=funcs), ev, items, ["correct", "format"]))
    assert found and found[0].kind == "reward_stall" and found[0].severity == "warning"
    assert found[0].evidence["carrier"] == "format" and "'format'" in found[0].message
    assert len(found) == 1  # one alert per episode, not one per evaluation


def test_stall_of_a_single_reward_is_information():
    """One reward rising while accuracy is flat is also ordinary late convergence: said, never alerted."""
    n = 200
    ev, items = evals_frame([0.5] * 21)
    found = detect_decoupling(align(steps_frame(np.linspace(0.2, 0.7, n)), ev, items, ["r"]))
    assert [(f.kind, f.severity) for f in found] == [("reward_stall", "info")]
    assert "truth=" in found[0].message and not found[0].is_alert


def test_no_stall_while_accuracy_falls():
    """A falling accuracy is not 'flat': the falling pattern judges it, the stall stays silent."""
    n = 200
    funcs = np.stack([np.full(n, 0.3), np.linspace(0.1, 0.6, n)], axis=1)
    ev, items = evals_frame(np.linspace(0.8, 0.4, 21), n_items=1000)
    found = detect_decoupling(align(steps_frame(funcs.sum(axis=1), funcs=funcs), ev, items, ["correct", "format"]))
    assert [f.kind for f in found] == ["decoupling"] and "'format'" in found[0].message


def test_best_checkpoint_by_accuracy_vs_reward():
    reward = np.linspace(0.2, 0.8, 100)
    ev, items = evals_frame([0.3, 0.6, 0.5, 0.4, 0.35, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3])
    f = best_checkpoint(align(steps_frame(reward), ev, items, ["r"]))
    assert f.kind == "best_checkpoint" and f.evidence["best_by_accuracy"] == 10
    assert f.evidence["best_by_reward"] == 100 and not f.is_alert


def test_signal_gap_and_saturation():
    n = 100
    fail = np.where(np.arange(n) < 60, 0.9, 0.1)
    found = detect_signal_gap(steps_frame(np.zeros(n), all_fail=fail))
    gaps = [f for f in found if f.kind == "signal_gap"]
    assert len(gaps) == 1 and gaps[0].severity == "critical"
    assert gaps[0].onset == 1 and gaps[0].step == 20 and 60 <= gaps[0].window_end <= 80
    assert "SFT" in gaps[0].message and "effective batch 32 of 64" in gaps[0].message
    s = steps_frame(np.zeros(n)).with_columns(pl.lit(0.9).alias("frac_all_pass"))
    sat = detect_signal_gap(s)
    assert [f.kind for f in sat] == ["saturated"] and not sat[0].is_alert


def test_signal_gap_quiet_on_moderate_share():
    rng = np.random.default_rng(0)
    assert detect_signal_gap(steps_frame(np.zeros(300), all_fail=np.clip(0.35 + rng.normal(0, 0.15, 300), 0, 1))) == []


def _zero_std_steps(reward, zero):
    return steps_frame(np.asarray(reward, float)).drop("frac_all_fail").with_columns(
        pl.Series("frac_zero_signal", np.asarray(zero, float)))


def test_signal_gap_fallback_on_trainer_zero_std():
    gaps = detect_signal_gap(_zero_std_steps(np.full(50, 0.01), np.full(50, 0.95)), reward_range_given=(0, 1))
    assert gaps and gaps[0].kind == "signal_gap" and "zero-std share" in gaps[0].message
    strong = _zero_std_steps(np.full(50, 0.9), np.full(50, 0.95))
    found = detect_signal_gap(strong, reward_range_given=(0, 1))
    assert [f.kind for f in found] == ["saturated"]  # a strong model's tied groups are all-pass


def test_uniformly_low_reward_is_dead_without_a_given_range():
    """0.04 on a 0-1 scale is near the bottom of the range, even though it is the run's own maximum."""
    rng = np.random.default_rng(1)
    found = detect_signal_gap(_zero_std_steps(np.clip(0.04 + rng.normal(0, 0.005, 80), 0, 1), np.full(80, 0.97)))
    assert [f.kind for f in found] == ["signal_gap"]
    assert found[0].evidence["reward_range_source"].startswith("inferred")


def test_signed_reward_scale_saturation_is_not_a_signal_gap():
    """Penalties down to -10, bonuses up to +11: tied groups at the top of the range are all-pass."""
    rng = np.random.default_rng(2)
    reward = np.concatenate([rng.uniform(-10, 11, 5), np.full(75, 10.5) + rng.normal(0, 0.2, 75)])
    found = detect_signal_gap(_zero_std_steps(reward, np.full(80, 0.9)), reward_range_given=(-10, 11))
    assert "signal_gap" not in {f.kind for f in found}
    assert "saturated" in {f.kind for f in found}
    low = detect_signal_gap(_zero_std_steps(np.full(80, -9.8), np.full(80, 0.9)), reward_range_given=(-10, 11))
    assert [f.kind for f in low] == ["signal_gap"]


def test_signal_gap_quotes_the_triggering_share_and_resolves():
    fail = np.concatenate([np.full(40, 0.7), np.full(40, 0.1)])
    gaps = [f for f in detect_signal_gap(steps_frame(np.zeros(80), all_fail=fail)) if f.kind == "signal_gap"]
    assert len(gaps) == 1 and gaps[0].state == "resolved" and gaps[0].resolved_step > 40
    assert gaps[0].evidence["share_all_fail"] >= 0.6  # the share quoted is the one that crossed the threshold
    assert "70% of prompt groups" in gaps[0].message and "RESOLVED" in gaps[0].message
    assert not gaps[0].firing


def test_dead_share_prediction():
    g = pl.DataFrame({"mode": ["train"] * 2, "n_pass": [0, 4], "G": [8, 8]})
    assert dead_share_at(g, 16) == pytest.approx((1.0 + (0.5**16) * 2) / 2)


@pytest.mark.slow
@pytest.mark.xdist_group("demo")
def test_demo_runs_get_the_right_alerts(demo_runs):
    """Verdicts at the end of each demo run: kinds and states, with the onset read from the run itself."""
    import diag

    def firing(name):
        return {(f.kind, f.severity) for f in detect_all(diag.open_run(demo_runs / name)) if f.firing}

    assert not {k for k, sev in firing("strong-healthy") if sev == "critical"}
    assert "signal_gap" in {k for k, _ in firing("weak-signal-gap")}
    run = diag.open_run(demo_runs / "deceptive-reward")
    dec = [f for f in detect_all(run) if f.kind == "decoupling" and f.firing]
    assert dec and dec[-1].severity == "critical" and "lenient_correct" in dec[-1].message
    acc = run.evals.filter(bucket="all", metric="accuracy").sort("step")
    before = acc.filter(pl.col("step") <= dec[-1].step)
    peak_step = before.sort(["value", "step"], descending=[True, False])["step"][0]
    assert abs(dec[-1].onset - peak_step) <= 2 * 10  # the onset is this run's accuracy peak (or a neighbour)
    live = run.alerts.filter(pl.col("kind") == "decoupling")["message"].to_list()
    assert live and all("'lenient_correct'" in m and "'heldout'" not in m for m in live)  # the reward, not the set


def test_one_evaluation_dip_warns_then_resolves():
    """A transient dip on a large held-out set: a warning, never critical, resolved when the *level* is
    back (the mean of the evaluations after the best block, at most three), not on the first good one."""
    accs = [0.5, 0.6, 0.7, 0.8, 0.85, 0.85, 0.85, 0.72, 0.86, 0.86, 0.87, 0.86]
    ev, items = evals_frame(accs, n_items=1000, jitter=0.05)
    a = align(steps_frame(np.full(120, 0.6)), ev, items, ["r"])
    found = detect_decoupling(a)
    assert [f.kind for f in found] == ["decoupling"]
    f = found[0]
    assert f.severity == "warning" and f.state == "resolved" and f.resolved_step == 100 and not f.firing


def test_sustained_fall_escalates_to_critical_and_stays_firing():
    accs = [0.5, 0.6, 0.7, 0.8, 0.85, 0.85, 0.85, 0.72, 0.7, 0.68, 0.66, 0.65]
    ev, items = evals_frame(accs, n_items=1000, jitter=0.05)
    found = detect_decoupling(align(steps_frame(np.full(120, 0.6)), ev, items, ["r"]))
    assert len(found) == 1 and found[0].severity == "critical" and found[0].firing
    f = found[0]  # warned at the first evaluation below, confirmed critical at a later one, within three
    assert f.step == 70 and f.step < f.evidence["critical_at"] <= f.step + 3 * 10


def test_fall_after_recovery_is_a_new_episode():
    accs = [0.5, 0.7] + [0.85] * 5 + [0.7, 0.68, 0.66] + [0.85] * 5 + [0.7, 0.68, 0.66, 0.64, 0.62]
    ev, items = evals_frame(accs, n_items=1000, jitter=0.05)
    found = detect_decoupling(align(steps_frame(np.full(10 * len(accs), 0.6)), ev, items, ["r"]))
    assert [f.state for f in found] == ["resolved", "firing"]
    assert found[0].key != found[1].key and found[1].episode == 2


@pytest.mark.parametrize("n", [None, 300])
def test_imported_fall_without_items_never_crashes(n):
    """Importers store evaluations without items and often without n: a verdict, never int(NaN)."""
    accs = [0.5, 0.6, 0.7, 0.71, 0.7, 0.6, 0.5, 0.45, 0.4, 0.35, 0.3]
    ev = schema.conform("evals", [{"step": 10 * k, "eval_set": "heldout", "metric": "accuracy", "bucket": "all",
                                   "value": v, "n": n} for k, v in enumerate(accs)])
    found = [f for f in detect_decoupling(align(steps_frame(np.linspace(0.4, 0.6, 110)), ev, None, ["r"]))
             if f.kind == "decoupling"]
    assert found and found[0].severity == "critical"
    if n is None:
        assert found[0].evidence["test"] == "spread between evaluations" and "weaker test" in found[0].message
    else:
        assert found[0].evidence["test"] in ("eval sizes", "spread between evaluations")


def test_not_enough_data_is_said():
    from types import SimpleNamespace

    run = SimpleNamespace(steps=schema.empty("steps"), groups=schema.empty("groups"), evals=schema.empty("evals"),
                          eval_items=schema.empty("eval_items"), meta={})
    found = detect_all(run)
    assert {f.evidence["detector"] for f in found if f.kind == "no_data"} == {"signal_gap", "decoupling", "causes", "truth_gap"}
    assert all(not f.is_alert for f in found)
    assert all("Not enough data" in f.message for f in found)


def test_signal_gap_counts_groups_that_fail_the_task_but_vary_in_format():
    """A weak model with a format bonus: all-fail share 0.3 (format spread makes groups "mixed"), but
    0.9 of groups have no passing completion. The gap is judged on the latter, online and offline."""
    from diag.monitor import Monitor  # noqa: F401 - the online path shares failing_share
    from diag.detect.signal_gap import failing_share

    n = 40
    steps = steps_frame(np.full(n, 0.1), all_fail=np.full(n, 0.3)).with_columns(frac_no_pass=pl.lit(0.9))
    found = [f for f in detect_signal_gap(steps) if f.kind == "signal_gap"]
    assert len(found) == 1 and found[0].firing
    assert "no completion that passes the verifier" in found[0].message
    assert found[0].evidence["share_all_fail"] == pytest.approx(0.9)
    # older runs without the column: judged on the all-fail share as before (no gap here)
    assert not [f for f in detect_signal_gap(steps.drop("frac_no_pass")) if f.kind == "signal_gap"]
    assert failing_share({"frac_no_pass": float("nan"), "frac_all_fail": 0.3}) == 0.3


def test_a_resumed_decoupling_scan_equals_a_scan_from_the_start():
    """The dashboard keeps the decoupling scan between recomputations of a growing run: at every size it
    gives exactly the findings a scan from the start gives, and a run rewritten under it (an earlier
    evaluation changed) is scanned again from the start."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import shapes

    from diag.detect import align
    from diag.detect.decoupling import DecouplingParams, detect_decoupling
    from diag.detect.replay import DecouplingReplay

    p = DecouplingParams()
    for shape, seed in (("drift", 3), ("dip", 5), ("flat_fall", 8)):
        run, _ = shapes.make_shape_run(shape, seed)
        replay = DecouplingReplay(p)
        last = int(run.steps["step"].max())
        for upto in range(40, last + 1, 17):  # steps arrive, evaluations with them
            a = align(run.steps.filter(pl.col("step") <= upto), run.evals.filter(pl.col("step") <= upto),
                      run.eval_items, run.meta["reward_funcs"])
            assert detect_decoupling(a, p, replay) == detect_decoupling(a, p), (shape, upto)
        changed = run.evals.with_columns(pl.when(pl.col("step") == 20).then(0.0).otherwise(pl.col("value")).alias("value"))
        a = align(run.steps, changed, run.eval_items, run.meta["reward_funcs"])
        assert detect_decoupling(a, p, replay) == detect_decoupling(a, p)


@pytest.mark.slow
@pytest.mark.xdist_group("demo")
def test_a_firing_alert_says_what_the_run_spent_since_its_onset(demo_runs):
    """The demo's deceptive run: each firing alert carries its cost since the onset (steps, seconds from the
    recorder's wall times, completion tokens), in --json and in words; --gpus turns the seconds into GPU-hours."""
    import json

    import diag
    from diag.cli import main
    from diag.detect import check_run

    run = diag.open_run(demo_runs / "deceptive-reward")
    last = int(run.steps["step"].max())
    findings, _ = check_run(run, gpus=4)
    firing = [f for f in findings if f.firing]
    assert firing and all(f.cost is not None for f in firing)
    assert all(f.cost is None for f in findings if not f.firing)
    for f in firing:
        c = f.cost
        assert c["steps"] == last - f.onset and c["seconds"] > 0 and c["tokens"] > 0
        assert c["gpu_hours"] == pytest.approx(c["seconds"] * 4 / 3600)
        assert f"Since its onset (step {f.onset}) the run has spent {c['steps']} steps" in f.message
    # the seconds are the run's own: its wall times from the onset to its last step
    wall = run.steps.filter(pl.col("step") <= firing[0].onset)["wall_time"].drop_nulls()
    assert firing[0].cost["seconds"] <= float(run.steps["wall_time"].max()) - float(wall[-1]) + 1e-6


def test_cost_reads_what_each_log_has():
    """Seconds from wall times, else a per-step timer; tokens from lengths x completions, else the trainer's
    running count (prompts included, said so); None where the log cannot say."""
    from diag.detect.cost import cost_since, gpus_of, words

    n = 50
    steps = steps_frame(np.full(n, 0.5)).with_columns(wall_time=pl.Series(np.arange(n) * 30.0 + 1e9))
    c = cost_since(steps, schema.empty("scalars"), 10, 50)
    assert c["steps"] == 40 and c["seconds"] == pytest.approx(40 * 30.0) and c["tokens"] == pytest.approx(40 * 4 * 64)
    assert c["tokens_are"] == "completion tokens" and c["gpu_hours"] is None
    bare = steps.drop("wall_time", "len_mean")
    timer = schema.conform("scalars", [{"step": s, "mode": "train", "key": k, "value": v} for s in range(1, n + 1)
                                        for k, v in (("timing_s/step", 12.0), ("num_tokens", 1000.0 * s))])
    c = cost_since(bare, timer, 10, 50, gpus=8)
    assert c["seconds"] == pytest.approx(480.0) and c["tokens"] == pytest.approx(40_000.0)
    assert "prompts included" in c["tokens_are"] and c["gpu_hours"] == pytest.approx(480 * 8 / 3600)
    none = cost_since(bare, schema.empty("scalars"), 10, 50)
    assert none["seconds"] is None and none["tokens"] is None and words(none) == "40 steps"
    assert gpus_of({"config": {"trainer": {"n_gpus_per_node": 8, "nnodes": 2}}}) == 16 and gpus_of({}) is None
