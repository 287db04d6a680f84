"""The SFT fallback ([remedy] on_signal_gap = "sft"): one recorded run in phases on one step axis, the
probe before and after the warm-start, and the monitor's gap alert consistent with what the run measured."""

import polars as pl
import pytest

import diag
from diag import phases
from diag.detect.run import DetectParams
from diag.detect.signal_gap import SignalGapParams
from diag.monitor import MonitorConfig
from diag.probe import predicts_gap
from training.config import ConfigError, from_dict


def _cfg(when: str, **grpo):
    return from_dict({"name": f"fallback-{when}", "model": {"path": "base:weak"},
                      "task": {"name": "add2", "n_train": 2000, "n_eval": 100},
                      "grpo": {"steps": 24, "num_generations": 4, "prompts_per_step": 4, "max_completion_length": 8,
                               "rewards": ["strict_correct"], **grpo},
                      "sft": {"steps": 600, "eval_every": 300}, "heldout": {"every": 4, "max_new_tokens": 8},
                      "probe": {"prompts": 40, "k": 8}, "monitor": {"console": False},
                      "remedy": {"on_signal_gap": "sft", "fallback_when": when}})


def test_phase_labels_and_shares_are_derived_from_steps():
    meta = {"phases": [{"phase": "grpo", "start": 1, "end": 3}, {"phase": "sft", "start": 4, "end": 9},
                       {"phase": "grpo", "start": 10, "end": None}, {"phase": 7}, "junk"]}
    ph = phases.of(meta)
    assert [p["phase"] for p in ph] == ["grpo", "sft", "grpo"]
    steps = pl.DataFrame({"step": [1, 2, 3, 10, 11], "gen_call": [1, 2, 3, 4, 5], "frac_all_fail": [1.0, 1.0, 0.5, 0.25, 0.25]})
    labelled = phases.label(steps, ph)
    assert labelled["phase"].to_list() == ["grpo"] * 5
    assert phases.label(pl.DataFrame({"step": [5]}), ph)["phase"].to_list() == ["sft"]
    shares = phases.all_fail_by_phase(steps, ph)
    assert [(m["start"], m["steps"]) for m in shares] == [(1, 3), (10, 2)]
    assert shares[0]["all_fail"] == pytest.approx(2.5 / 3) and shares[1]["all_fail"] == pytest.approx(0.25)


def test_config_refuses_a_fallback_outside_grpo():
    with pytest.raises(ConfigError, match="needs kind"):
        from_dict({"name": "x", "kind": "sft", "remedy": {"on_signal_gap": "sft"}})
    with pytest.raises(ConfigError, match="fallback_when"):
        from_dict({"name": "x", "remedy": {"on_signal_gap": "sft", "fallback_when": "always"}})


def _check_phases(run, cfg):
    ph = phases.of(run.meta)
    # contiguous phases on one step axis; the SFT phase has exactly its steps; GRPO gets all its steps
    for a, b in zip(ph, ph[1:]):
        assert b["start"] == a["end"] + 1
    sft = [p for p in ph if p["phase"] == "sft"]
    assert len(sft) == 1 and sft[0]["end"] - sft[0]["start"] + 1 == cfg.sft.steps
    assert sum(p["end"] - p["start"] + 1 for p in ph if p["phase"] == "grpo") == cfg.grpo.steps
    # group statistics only in GRPO phases, held-out evaluations in every phase, each step once
    steps = phases.label(run.steps, ph).filter(pl.col("n_groups").is_not_null())
    assert set(steps["phase"]) == {"grpo"}
    acc = run.evals.filter((pl.col("bucket") == "all") & (pl.col("metric") == "accuracy")).sort("step")
    assert acc["step"].n_unique() == acc.height
    labelled = phases.label(acc, ph)
    assert set(labelled["phase"]) == {p["phase"] for p in ph}
    # the warm-start teaches the task (600 steps from the weak base), and its model is probed
    at = dict(zip(acc["step"].to_list(), acc["value"].to_list()))
    assert at[sft[0]["end"]] > at[sft[0]["start"] - 1]
    assert isinstance(sft[0]["probe_after"]["mean_pass_rate"], float)
    assert isinstance(run.meta["probe"]["mean_pass_rate"], float)
    assert run.status == "finished"
    return ph, sft[0]


@pytest.mark.slow
@pytest.mark.xdist_group("trl")
def test_monitor_confirmed_gap_falls_back_to_sft_and_resumes(tmp_path, cache_dir):
    from training.fallback import run_with_fallback

    cfg = _cfg("monitor")
    window = SignalGapParams(window=4)
    path = run_with_fallback(cfg, str(tmp_path), progress=False,
                             monitor=MonitorConfig(console=False, params=DetectParams(signal_gap=window)))
    run = diag.open_run(path)
    ph, sft = _check_phases(run, cfg)
    gap = run.alerts.filter(pl.col("kind") == "signal_gap")
    if ph[0]["phase"] == "sft":
        pytest.fail("fallback_when = 'monitor' must start with GRPO")
    if gap.height == 0:  # the weak base gave signal on this machine: then no fallback may happen
        assert [p["phase"] for p in ph] == ["grpo"]
        return
    # the first gap fired in the first GRPO phase and stopped it there
    first = gap.sort("onset").row(0, named=True)
    assert first["step"] == ph[0]["end"] and "signal gap" in sft["reason"]
    # resolved exactly when the rolling all-fail share of the GRPO steps fell below threshold - hysteresis
    s = run.steps.filter(pl.col("frac_all_fail").is_not_null()).sort("step")
    rolling = s["frac_all_fail"].rolling_mean(window.window).to_list()
    dropped = [st for st, r in zip(s["step"].to_list(), rolling)
               if r is not None and r < window.all_fail_share - window.hysteresis and st > first["step"]]
    if dropped:
        assert first["state"] == "resolved" and first["resolved_step"] == dropped[0]
    else:
        assert first["state"] == "firing"


@pytest.mark.slow
@pytest.mark.xdist_group("trl")
def test_probe_predicted_gap_starts_with_the_warm_start(tmp_path, cache_dir):
    from training.launch import launch

    cfg = _cfg("probe")
    run = diag.open_run(launch(cfg, str(tmp_path), progress=False))
    ph, _ = _check_phases(run, cfg)
    expected = ["sft", "grpo"] if predicts_gap(run.meta["probe"]) else ["grpo"]
    assert [p["phase"] for p in ph][: len(expected)] == expected
