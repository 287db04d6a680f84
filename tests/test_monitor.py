"""The online monitor: same findings as the offline scan, bounded cost per step, alerts stored."""


import numpy as np
import polars as pl
import pytest

import diag
from diag.detect.decoupling import DecouplingParams, fold
from diag.detect import detect_all
from diag.detect.run import DetectParams
from diag.monitor import Monitor, MonitorConfig


def replay(run, monitor):
    """Feed a finished run's steps and evaluations to a monitor in step order."""
    steps = run.steps.sort("step").to_dicts()
    evals = run.evals.sort("step")
    items = run.eval_items
    eval_steps = sorted(set(evals["step"].to_list()))
    i = 0
    for e in eval_steps:
        while i < len(steps) and steps[i]["step"] <= e:
            monitor("step", steps[i])
            i += 1
        frame = evals.filter(pl.col("step") == e)
        correct = items.filter(pl.col("step") == e).sort("item")["correct"].to_numpy()
        monitor("eval", {"frame": frame, "eval_set": frame["eval_set"][0], "step": e, "correct": correct})
    for row in steps[i:]:
        monitor("step", row)


@pytest.mark.slow
@pytest.mark.xdist_group("demo")
@pytest.mark.parametrize("name", ["strong-healthy", "weak-signal-gap", "deceptive-reward"])
def test_online_matches_offline_on_demo_runs(demo_runs, name):
    run = diag.open_run(demo_runs / name)
    mon = Monitor(None, MonitorConfig(console=False), run_name=name, func_names=run.reward_funcs,
                  group_size=run.meta["group_size"])
    replay(run, mon)
    online = {(f.key, f.severity, f.state) for f in fold(mon.findings)}
    # the live verdict: check judges a short run again with the whole run's noise (tests/test_hindsight.py)
    live = DetectParams(decoupling=DecouplingParams(hindsight=False))
    offline = {(f.key, f.severity, f.state) for f in detect_all(run, live) if f.is_alert}
    assert online == offline


def test_monitor_writes_alerts_and_requests_stop(tmp_path):
    rec = diag.Recorder(str(tmp_path), "m", ["r"], group_size=8, flush_secs=0)
    mon = Monitor(rec, MonitorConfig(console=False, stop_on=("signal_gap",)))
    rec.subscribe(mon)
    for s in range(1, 30):
        rec.log_batch(s, np.zeros(64), passed=np.zeros(64, bool))
    assert mon.stop_requested and mon.stop_requested.startswith("signal_gap at step 20")
    rec.close()
    alerts = diag.open_run(tmp_path / "m").alerts
    assert alerts["kind"].to_list() == ["signal_gap"] and alerts["severity"][0] == "critical"


def test_monitor_state_per_evaluation_is_bounded():
    """Per-step work is O(1) (appends and a rolling sum); per-evaluation work covers at most
    `max_evals` evaluations and the steps around them, however long the run."""
    mon = Monitor(None, MonitorConfig(console=False, max_evals=16), func_names=["r"])
    rng = np.random.default_rng(0)
    for s in range(1, 20_001):
        mon.on_step({"step": s, "reward_mean": rng.random(), "func_mean": [0.5], "frac_all_fail": 0.3,
                     "frac_all_pass": 0.1, "len_mean": 4.0, "frac_clipped": 0.0})
        if s % 10 == 0:
            frame = pl.DataFrame({"step": [s], "eval_set": ["h"], "metric": ["accuracy"], "bucket": ["all"],
                                  "value": [0.5], "n": [100]})
            mon.on_eval({"frame": frame, "correct": None})
    a = mon.aligned()
    assert len(a) == 16 and len(mon.evals) == 16
    assert len(mon.gap.buf) == mon.config.params.signal_gap.window


@pytest.mark.parametrize("log", ["trl_console_qwen25_7b_gsm8k/exp1a/rho0.30_seed42.log",
                                 "trl_console_qwen25_7b_gsm8k/exp1a/rho1.00_seed42.log",
                                 "trl_console_qwen25_7b_gsm8k/exp1a/rho0.50_seed42.log"])
def test_online_signal_gap_on_logs_with_a_zero_std_share_only(tmp_path, log):
    """A TRL console log carries the zero-std share, not per-group classes: the live monitor (what
    `grpo-diag watch` runs) splits it by the reward's place in its range as the offline scan does, so a
    dead real run alerts live and a saturated one does not. (Severity and onset may differ: the live
    window counts logged rows, and these logs have a row every 5 steps.)"""
    from diag.importers import import_log
    from tests.conftest import real_logs_dir

    src = real_logs_dir() / log
    if not src.exists():
        pytest.skip(f"{src}: the shared real logs are not here")
    run = diag.open_run(import_log(src, root=str(tmp_path))[0])
    mon = Monitor(None, MonitorConfig(console=False), run_name=run.name, func_names=run.reward_funcs,
                  reward_range=run.meta.get("reward_range"))
    replay(run, mon)
    online = {f.kind for f in fold(mon.findings) if f.kind == "signal_gap"}
    offline = {f.kind for f in detect_all(run) if f.kind == "signal_gap" and f.is_alert}
    assert online == offline
