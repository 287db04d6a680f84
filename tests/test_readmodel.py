"""The read model (diag.summary): one rule per choice a reader could otherwise see made two ways, and
the live monitor aligning evaluations exactly as the offline check does."""

import numpy as np
import polars as pl

import diag
from diag.detect.align import align
from diag.monitor import Monitor, MonitorConfig
from diag.summary import accuracy_series, best_checkpoints, bucket_series, once_per_step, signal_shares


def _run_with_repeats(tmp_path, monitor=None):
    """A run whose steps 5 and 12 are logged twice and whose evaluation at step 10 is repeated (with a
    live monitor listening, where given)."""
    rec = diag.Recorder(str(tmp_path), "rep", ["correct", "format"], group_size=4, flush_secs=0)
    if monitor is not None:
        rec.subscribe(monitor)
    rng = np.random.default_rng(3)
    for s in range(1, 31):
        for _ in range(2 if s in (5, 12) else 1):
            r = np.stack([rng.random(16) < min(0.9, s / 30), np.full(16, 0.1)], 1).astype(float)
            rec.log_batch(s, r, passed=r[:, 0] > 0, lengths=rng.integers(3, 9, 16))
        if s % 5 == 0:
            for _ in range(2 if s == 10 else 1):
                rec.log_eval(s, "heldout", rng.random(40) < 0.5, buckets=["easy", "hard"] * 20)
    rec.close()
    return diag.open_run(tmp_path / "rep")


def test_a_step_and_an_evaluation_count_once_with_their_first_record(tmp_path):
    run = _run_with_repeats(tmp_path)
    assert run.steps.height == 32  # both copies are stored: nothing recorded is lost
    s = once_per_step(run.steps)
    assert s["step"].to_list() == list(range(1, 31))
    first5 = run.steps.filter(pl.col("step") == 5)["reward_mean"][0]
    assert s.filter(pl.col("step") == 5)["reward_mean"][0] == first5
    acc = accuracy_series(run.evals)
    assert acc["step"].to_list() == [5, 10, 15, 20, 25, 30] and acc["n"].to_list() == [40] * 6
    first10 = run.evals.filter((pl.col("step") == 10) & (pl.col("bucket") == "all") &
                               (pl.col("metric") == "accuracy"))["value"][0]
    assert acc.filter(pl.col("step") == 10)["value"][0] == first10
    b = bucket_series(run.evals)
    assert set(b["bucket"]) == {"easy", "hard"} and b.height == 12


def test_monitor_aligns_evaluations_as_the_offline_check(tmp_path):
    mon = Monitor(None, MonitorConfig(console=False), run_name="rep", func_names=["correct", "format"])
    run = _run_with_repeats(tmp_path, mon)
    online, offline = mon.aligned(), align(run.steps, run.evals, run.eval_items, run.reward_funcs)
    assert online.steps.tolist() == offline.steps.tolist() == [5, 10, 15, 20, 25, 30]
    for field in ("acc", "n", "reward", "length", "clipped", "funcs"):
        assert np.allclose(getattr(online, field), getattr(offline, field), equal_nan=True), field
    assert all(np.array_equal(online.items[k], offline.items[k]) for k in (5, 10, 15, 30))


def test_signal_shares_add_up_and_mixed_is_what_is_left(tmp_path):
    run = _run_with_repeats(tmp_path)
    sh = signal_shares(run.steps)
    total = sh["all_fail"] + sh["all_pass"] + sh["tied"] + sh["mixed"]
    assert np.allclose(total.to_numpy(), 1.0)
    assert signal_shares(pl.DataFrame({"step": [1, 2], "reward_mean": [0.1, 0.2]})) is None


def test_best_checkpoints_from_the_aligned_series(tmp_path):
    run = _run_with_repeats(tmp_path)
    a = align(run.steps, run.evals, None, run.reward_funcs)
    b = best_checkpoints(a)
    assert b["by_accuracy"]["accuracy"] == float(np.nanmax(a.acc))
    assert b["by_reward"]["reward"] == float(np.nanmax(a.reward))
