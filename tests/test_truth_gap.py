"""The reward-truth gap: truth recorded per completion, group and step; the per-step detector on
generated runs (a contract each machine meets: kinds, severities, order), live as offline; imports."""

import json
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import diag
from diag import schema
from diag.detect import check_run
from diag.detect.decoupling import fold
from diag.detect.truth_gap import TruthGapScanner, detect_truth_gap
from diag.importers import import_log
from diag.monitor import Monitor, MonitorConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from truth_gap import generated  # noqa: E402  the benchmark's generator: one definition of the shapes


def gaps(frame, names=("lenient",)):
    return [f for f in detect_truth_gap(frame, list(names)) if f.kind == "truth_gap"]


def test_recorder_keeps_truth_per_group_step_and_completion(tmp_path):
    rec = diag.Recorder(str(tmp_path), "t", ["lenient", "format"], group_size=4, flush_secs=0)
    rewards = np.array([[1, 1], [1, 0], [0, 1], [1, 1], [0, 0], [1, 0], [1, 1], [0, 1]], dtype=float)
    truth = [True, False, False, None, False, False, True, True]
    row = rec.log_batch(1, rewards, truth=truth, completions=[f"c{i}" for i in range(8)])
    rec.close()
    run = diag.open_run(tmp_path / "t")
    assert run.groups["n_true"].to_list() == [1, 2]  # None is not judged, not true
    assert row["n_truth"] == 7 and row["truth_rate"] == pytest.approx(3 / 7)
    total = rewards.sum(axis=1)
    untrue = [1, 2, 4, 5]
    assert row["reward_untrue"] == pytest.approx(total[untrue].mean())
    assert row["func_untrue"] == pytest.approx(list(rewards[untrue].mean(axis=0)))
    judged = [0, 1, 2, 4, 5, 6, 7]
    assert row["untrue_share"] == pytest.approx(total[untrue].sum() / total[judged].sum())
    assert run.steps["truth_rate"][0] == pytest.approx(3 / 7)
    assert run.completions.sort("group", "index")["truth"].to_list() == truth


def test_a_hacked_run_gets_a_warning_then_a_critical_gap_naming_the_payer():
    frame, onset = generated("hacked", 7)
    found = gaps(frame)
    assert len(found) == 1
    f = found[0]
    assert f.severity == "critical" and f.firing and f.evidence["critical_at"] > f.step  # warning first
    assert f.onset >= onset - 10 and f.evidence["payer"] == "lenient" and "'lenient'" in f.message
    assert f.evidence["untrue_share_after"] > f.evidence["untrue_share_before"]
    assert f.evidence["reward_after"] >= 0.9 * f.evidence["reward_before"]


def test_healthy_runs_get_nothing():
    for seed in range(20):
        assert gaps(generated("healthy", seed)[0]) == []


def test_the_gap_resolves_when_the_truth_comes_back():
    frame, onset = generated("hacked", 3)
    before = frame.filter(pl.col("step") < onset)
    fallen = frame.filter(pl.col("step") >= onset).head(60)
    plateau = before.tail(40)  # the truth rate as it stood before the fall, three times over
    run = pl.concat([before, fallen, plateau, plateau, plateau]).with_columns(step=pl.int_range(1, pl.len() + 1))
    found = gaps(run)
    assert [f.state for f in found] == ["resolved"]
    assert onset + 60 <= found[0].resolved_step <= onset + 60 + 40


def test_a_collapse_is_not_a_gap():
    """The truth rate and the reward fall together, wrong answers paid what they always were: the model got
    worse and the reward says so (less steeply, as a lenient reward does)."""
    frame, _ = generated("hacked", 5)
    fell = frame.with_columns(reward_untrue=pl.lit(0.1), reward_mean=pl.col("truth_rate") + 0.1 * (1 - pl.col("truth_rate")))
    assert gaps(fell) == []


def test_a_reward_that_falls_less_but_pays_wrong_answers_more_is_a_gap():
    """The reward lost a third of the truth's share (a collapse by the level rule), but each untrue
    completion is paid more and more: the policy found a way to be paid without being right."""
    frame, onset = generated("hacked", 5)
    after = pl.col("step") >= onset
    pay = pl.when(after).then(0.1 + 0.004 * (pl.col("step") - onset)).otherwise(0.1).clip(upper_bound=0.5)
    run = frame.with_columns(reward_untrue=pay).with_columns(
        reward_mean=pl.col("truth_rate") + pl.col("reward_untrue") * (1 - pl.col("truth_rate")))
    found = gaps(run)
    f = found[0] if found else None
    # the rise is seen by the level test (z) or by the pay channel's CUSUM, whichever comes first
    assert f and f.severity == "critical" and ((f.evidence["pay_untrue_z"] or 0) >= 3.0 or f.evidence["pay_cusum"] >= 6)
    assert f.evidence["pay_untrue_after"] > f.evidence["pay_untrue_before"] and "paid more than" in f.message


def test_untrue_completions_paid_more_while_the_truth_holds_is_a_warning_not_critical():
    """The pay per untrue completion climbs (a lenient component being exploited) while the truth rate
    holds: the pay channel opens a warning naming the payer; it is never critical on its own."""
    frame, _ = generated("healthy", 4)
    onset = 150
    after = pl.col("step") >= onset
    pay = pl.when(after).then(0.1 + 0.01 * (pl.col("step") - onset)).otherwise(0.1).clip(upper_bound=0.6)
    run = frame.with_columns(reward_untrue=pay, func_untrue=pl.concat_list(pay)).with_columns(
        reward_mean=pl.col("truth_rate") + pl.col("reward_untrue") * (1 - pl.col("truth_rate")))
    found = gaps(run)
    assert len(found) == 1 and found[0].severity == "warning" and found[0].evidence["channel"] == "pay"
    assert onset <= found[0].step <= onset + 40 and "'lenient'" in found[0].message
    assert found[0].evidence["pay_untrue_after"] >= found[0].evidence["pay_untrue_before"] + 0.1


def test_a_strict_reward_is_said_once_and_not_judged():
    frame, _ = generated("hacked", 5)
    strict = frame.with_columns(reward_true=pl.lit(1.0), reward_untrue=pl.lit(0.0),
                                reward_mean=pl.col("truth_rate"))
    out = detect_truth_gap(strict, ["strict"])
    assert [f.kind for f in out] == ["no_data"] and "reward is the truth" in out[0].message


def test_without_a_truth_series_it_says_how_to_get_one():
    frame, _ = generated("healthy", 0)
    out = detect_truth_gap(frame.drop("truth_rate"), ["lenient"])
    assert [f.kind for f in out] == ["no_data"]
    assert "DiagConfig(truth=" in out[0].message and "--map truth_rate=" in out[0].message


def test_the_monitor_raises_it_live_at_the_same_steps():
    frame, _ = generated("hacked", 11)
    mon = Monitor(None, MonitorConfig(console=False), func_names=["lenient"])
    for row in frame.to_dicts():
        mon("step", row)
    online = {(f.key, f.severity, f.state) for f in fold(mon.findings) if f.kind == "truth_gap"}
    offline = {(f.key, f.severity, f.state) for f in gaps(frame)}
    assert online == offline and online


def test_scanner_state_is_bounded_on_a_long_run():
    scanner = TruthGapScanner(["lenient"])
    for s in range(1, 5001):
        scanner.push({"step": s, "truth_rate": 0.5 + 0.01 * np.sin(s), "n_truth": 128, "reward_mean": 0.6})
    assert len(scanner.truth) == scanner.p.history and len(scanner.blocks) <= scanner.p.history // scanner.p.block


def test_check_ends_with_the_gap_and_decoupling_cites_it(tmp_path):
    frame, onset = generated("hacked", 2)
    rec = diag.Recorder(str(tmp_path), "h", ["lenient"], group_size=8, flush_secs=0)
    rec.writer.append("steps", schema.conform("steps", frame.with_columns(func_mean=pl.concat_list("reward_mean"))))
    # held-out accuracy that falls with the truth rate, evaluated every 10 steps
    for s in range(10, 301, 10):
        acc = 0.6 if s < onset + 10 else 0.3
        rec.log_eval_value(s, "heldout", acc, n=1000)
    rec.close()
    findings, verdict = check_run(diag.open_run(tmp_path / "h"))
    assert "reward-truth gap" in verdict["ends"]
    dec = [f for f in findings if f.kind == "decoupling"]
    assert dec and "truth rate fell" in dec[0].message and dec[0].evidence["truth_gap"].startswith("truth_gap@")


def test_generic_import_maps_a_truth_rate(tmp_path):
    frame, _ = generated("hacked", 4)
    src = tmp_path / "log.jsonl"
    src.write_text("\n".join(json.dumps({"step": r["step"], "reward": r["reward_mean"], "correct": r["truth_rate"]})
                             for r in frame.to_dicts()))
    path, _ = import_log(src, maps=["step=step", "reward=reward", "truth_rate=correct"], root=str(tmp_path / "runs"))
    run = diag.open_run(path)
    assert run.steps["truth_rate"].to_list() == pytest.approx(frame["truth_rate"].to_list())
    found = [f for f in check_run(run)[0] if f.kind == "truth_gap"]
    assert found and found[0].severity == "critical"


def test_verl_dumps_with_acc_beside_score_carry_the_truth(tmp_path):
    dumps = tmp_path / "rollouts"
    dumps.mkdir()
    rng = np.random.default_rng(0)
    for step in (1, 2, 3):
        lines = []
        for prompt in range(4):
            for _ in range(4):
                acc = bool(rng.random() < 0.5)
                score = 1.0 if acc else float(rng.random() < 0.5)  # a lenient score that pays some wrong answers
                lines.append(json.dumps({"input": f"p{prompt}", "output": "x", "gts": "1", "score": score,
                                         "acc": acc, "step": step}))
        (dumps / f"{step}.jsonl").write_text("\n".join(lines))
    path, notes = import_log(dumps, root=str(tmp_path / "runs"))
    run = diag.open_run(path)
    assert any("also the truth" in n for n in notes)
    g = run.groups.filter(pl.col("mode") == "train")
    assert g["n_true"].to_list() == g["n_pass"].to_list()  # acc decides both
    assert run.steps["truth_rate"].to_list() == pytest.approx(
        (g.group_by("step").agg(pl.col("n_true").sum() / pl.col("G").sum()).sort("step")["n_true"]).to_list())


def test_tinker_correct_key_is_the_truth_rate(tmp_path):
    src = tmp_path / "metrics.jsonl"
    rows = [{"step": s, "env/all/reward/total": 0.5, "env/all/correct": 0.4, "env/all/by_group/frac_mixed": 0.5}
            for s in range(5)]
    src.write_text("\n".join(json.dumps(r) for r in rows))
    run = diag.open_run(import_log(src, fmt="tinker", root=str(tmp_path / "runs"))[0])
    assert run.steps["truth_rate"].to_list() == [0.4] * 5


def test_both_detectors_measure_a_fall_from_one_floor():
    """A strict check plus a format bonus every completion earns (0.2): the reward-truth gap and the
    held-out detector measure the reward's fall towards the same floor (collapse.floor), the bonus, never 0;
    a signed reward towards its lowest point in both."""
    from diag.detect.align import build
    from diag.detect.moves import held_out_floor

    rng = np.random.default_rng(3)
    steps = np.arange(1, 201)
    strict = np.clip(0.5 + 0.2 * np.sin(steps / 30) + rng.normal(0, 0.05, steps.size), 0, 1)
    reward = strict + 0.2
    sc = TruthGapScanner(["strict", "format"])
    for st, s_, r in zip(steps, strict, reward):
        sc.push({"step": int(st), "truth_rate": float(s_), "n_truth": 128, "reward_mean": float(r),
                 "func_mean": [float(s_), 0.2]})
    evals = steps[9::10].astype(float)
    a = build("heldout", evals, strict[9::10], np.full(evals.size, 200.0), steps.astype(float),
              {"reward": reward, "length": np.ones(steps.size), "clipped": np.zeros(steps.size)},
              np.column_stack([strict, np.full(steps.size, 0.2)]), ["strict", "format"], {})
    assert sc._floor() == pytest.approx(0.2, abs=1e-6) and held_out_floor(a, evals.size - 1) == pytest.approx(0.2, abs=1e-6)
    sc.push({"step": 201, "truth_rate": 0.5, "n_truth": 128, "reward_mean": -0.3, "func_mean": [-0.5, 0.2]})
    assert sc._floor() == pytest.approx(-0.3)
