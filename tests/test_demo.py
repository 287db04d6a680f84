"""The three shipped scenarios, run as the demo runs them, show what they are meant to show."""

import polars as pl
import pytest

import diag
from diag.summary import accuracy_series, summarize

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]


def test_strong_healthy(demo_runs):
    s = summarize(diag.open_run(demo_runs / "strong-healthy"))
    assert s["status"] == "finished"
    assert s["accuracy_peak"] >= s["accuracy_start"] + 0.04  # GRPO raises held-out accuracy
    assert s["accuracy_end"] >= s["accuracy_start"]
    assert s["frac_all_fail_mean"] < 0.5


def test_weak_signal_gap(demo_runs):
    s = summarize(diag.open_run(demo_runs / "weak-signal-gap"))
    assert s["frac_all_fail_mean"] >= 0.75
    assert s["accuracy_end"] - s["accuracy_start"] < 0.05  # no real held-out gain
    assert s["accuracy_peak"] < 0.15


def test_deceptive_reward(demo_runs):
    run = diag.open_run(demo_runs / "deceptive-reward")
    s = summarize(run)
    assert s["reward_end"] > s["reward_start"]  # the training reward rises...
    assert s["accuracy_end"] <= s["accuracy_peak"] - 0.10  # ...while held-out accuracy falls below its peak
    # supporting evidence: completions run longer once the policy pads answers with junk
    steps = run.steps.sort("step")
    assert steps.tail(20)["len_mean"].mean() > steps.head(20)["len_mean"].mean()


def test_demo_runs_have_every_table(demo_runs):
    for name in ("strong-healthy", "weak-signal-gap", "deceptive-reward"):
        run = diag.open_run(demo_runs / name)
        assert run.groups.height and run.completions.height and run.eval_items.height
        acc = accuracy_series(run.evals)
        assert acc["step"].to_list()[0] == 0 and acc.height >= 10
        assert run.scalars.filter(pl.col("key") == "loss").height > 0
