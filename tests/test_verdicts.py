"""The end-of-run verdict on the shapes real decoupled runs take (issue: verdicts on real decoupled runs).

Each run is written as a `trainer_state.json` with the numbers the shape was described by (seeded
noise), imported like a user's log, and judged by `grpo-diag check`. The contracts are kinds, states
and exit codes, never a step or a p-value of one draw.
"""

import json

import numpy as np
import pytest

import diag
from diag.cli import main
from diag.detect import check_run
from diag.importers import import_log


def _log(tmp_path, steps, reward, evals, every, extra=None, components=None, name="run"):
    hist = []
    for i, s in enumerate(steps):
        row = {"step": int(s), "reward": float(reward[i]), "loss": 0.1}
        for key, series in (extra or {}).items():
            row[key] = float(series[i])
        for key, series in (components or {}).items():
            row[f"rewards/{key}/mean"] = float(series[i])
        hist.append(row)
    hist += [{"step": int(every * (k + 1)), "eval_accuracy": float(a)} for k, a in enumerate(evals)]
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps({"log_history": hist}))
    return p


def _judge(tmp_path, path, eval_size=None):
    out, _ = import_log(path, fmt="trainer-state", root=str(tmp_path / "runs"), eval_size=eval_size, overwrite=True)
    return out, check_run(diag.open_run(out))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sustained_noisy_drift_ends_decoupled_and_names_the_length_blowup(tmp_path, seed):
    """A 7B-on-MATH shape: reward 0.80 -> 0.94 over 210 steps, accuracy ~0.54 (steps 10-50) drifting to
    ~0.49 (180-210), each evaluation within 2 points of the trend; length 220 -> 600 tokens at step ~160
    with the clipped share 0% -> 50%. One good evaluation must not resolve it."""
    rng = np.random.default_rng(seed)
    steps = np.arange(1, 211)
    reward = np.linspace(0.80, 0.94, 210) + rng.normal(0, 0.02, 210)
    length = np.where(steps < 160, 220.0, 600.0) + rng.normal(0, 10, 210)
    clipped = np.where(steps < 160, 0.0, 0.5)
    trend = np.interp(np.arange(10, 211, 10), [10, 50, 180, 210], [0.54, 0.54, 0.49, 0.49])
    evals = trend + rng.uniform(-0.02, 0.02, len(trend))
    path = _log(tmp_path, steps, reward, evals, 10,
                extra={"completions/mean_length": length, "completions/clipped_ratio": clipped})
    out, (findings, verdict) = _judge(tmp_path, path)
    dec = [f for f in findings if f.kind == "decoupling"]
    assert dec and dec[-1].firing and "decoupled" in verdict["ends"]
    assert {"length_blowup", "clipped_jump"} <= {f.kind for f in findings}
    assert "length_blowup" in dec[-1].evidence.get("causes", [])
    assert verdict["best_checkpoint"]["step"] <= 60
    assert main(["check", str(out), "--fail-on", "warning"]) == 1


def test_small_fall_on_a_large_set_is_judged_with_its_eval_size(tmp_path):
    """GSM8K, 1,319 greedy items: score flat at 0.945, accuracy 0.904 at its peak then ~0.88 over 30
    evaluations: 2.8 points, far more than noise once averaged, though under any fixed 5-point rule."""
    rng = np.random.default_rng(3)
    evals = np.r_[[0.88, 0.89, 0.895, 0.904, 0.9, 0.898], 0.878 + rng.normal(0, 0.006, 30)]
    steps = np.arange(1, 10 * len(evals) + 1)
    reward = 0.945 + rng.normal(0, 0.01, len(steps))
    out, (findings, verdict) = _judge(tmp_path, _log(tmp_path, steps, reward, evals, 10), eval_size=1319)
    dec = [f for f in findings if f.kind == "decoupling"]
    assert dec and dec[-1].firing and dec[-1].severity == "critical"
    assert 0.01 < dec[-1].evidence["drop"] < 0.04 and dec[-1].evidence["test"] == "eval sizes"
    assert main(["check", str(out)]) == 1  # critical firing: the default --fail-on


def test_fall_under_a_flat_reward_is_decoupling(tmp_path):
    """A hand-written loop: reward 0.31 -> 0.29 (it holds), accuracy on 1,024 items peaks at 0.262, then
    0.241 over 11 evaluations, then 0.197 over 9: the reward no longer tracks the task."""
    rng = np.random.default_rng(4)
    evals = np.r_[[0.22, 0.24, 0.255, 0.262, 0.258], 0.241 + rng.normal(0, 0.008, 11), 0.197 + rng.normal(0, 0.008, 9)]
    steps = np.arange(1, 10 * len(evals) + 1)
    reward = np.linspace(0.31, 0.29, len(steps)) + rng.normal(0, 0.02, len(steps))
    _, (findings, verdict) = _judge(tmp_path, _log(tmp_path, steps, reward, evals, 10), eval_size=1024)
    dec = [f for f in findings if f.kind == "decoupling"]
    assert dec and dec[-1].firing and "decoupled" in verdict["ends"]
    assert dec[-1].evidence["trend"] in ("held", "fell less")


def test_reward_carried_up_by_its_format_component_is_a_stall_naming_it(tmp_path):
    """A VLM DAPO shape: total reward ~1.25 -> ~2.0 with the format component 0.29 -> 0.76, accuracy on
    32 items flat between 0.5 and 0.78."""
    rng = np.random.default_rng(5)
    steps = np.arange(1, 201)
    fmt = np.linspace(0.29, 0.76, 200) + rng.normal(0, 0.03, 200)
    acc_part = 0.96 + rng.normal(0, 0.05, 200)
    evals = rng.choice(np.arange(16, 26) / 32, 20)
    path = _log(tmp_path, steps, fmt + acc_part, evals, 10, components={"accuracy": acc_part, "format": fmt})
    _, (findings, verdict) = _judge(tmp_path, path, eval_size=32)
    stall = [f for f in findings if f.kind == "reward_stall" and f.is_alert]
    assert stall and stall[0].evidence["carrier"] == "format" and "'format'" in stall[0].message
    assert not [f for f in findings if f.kind == "decoupling" and f.severity == "critical"]


def test_collapse_with_a_thin_reward_history_is_not_decoupling(tmp_path):
    """SmolLM2 after SFT on a too-high learning rate: accuracy 0.50 -> 0.11 -> 0.06 and the training
    reward 0.24 -> 0.15 -> 0.05 over the same steps, the peak at the first evaluation."""
    rng = np.random.default_rng(6)
    evals = [0.50, 0.30, 0.11, 0.08, 0.06, 0.07, 0.06, 0.05]
    steps = np.arange(1, 81)
    reward = np.interp(steps, [1, 10, 30, 80], [0.24, 0.2, 0.15, 0.05]) + rng.normal(0, 0.03, 80)
    out, (findings, verdict) = _judge(tmp_path, _log(tmp_path, steps, reward, evals, 10), eval_size=200)
    assert not [f for f in findings if f.kind == "decoupling" and (f.severity == "critical" or f.firing)]
    assert main(["check", str(out)]) == 0


def test_a_bonus_every_completion_earns_does_not_hide_a_collapse(tmp_path):
    """The collapse above with a second reward function paying 0.2 to every completion (a format bonus the
    policy always earns): the strict reward still falls with accuracy; the total only seems to hold because
    a fifth of it cannot move. Without the bonus the verdict is the same."""
    rng = np.random.default_rng(6)
    evals = [0.50, 0.30, 0.11, 0.08, 0.06, 0.07, 0.06, 0.05]
    steps = np.arange(1, 81)
    strict = np.interp(steps, [1, 10, 30, 80], [0.24, 0.2, 0.15, 0.05]) + rng.normal(0, 0.03, 80)
    bonus = np.full(80, 0.2)
    path = _log(tmp_path, steps, strict + bonus, evals, 10, components={"strict": strict, "format": bonus})
    out, (findings, _) = _judge(tmp_path, path, eval_size=200)
    assert not [f for f in findings if f.kind == "decoupling" and (f.severity == "critical" or f.firing)]
    assert main(["check", str(out)]) == 0


def test_the_fixed_pay_is_found_only_where_the_reward_is_the_sum_of_its_functions():
    from diag.detect.carriers import fixed_pay_of

    k = 8
    strict = np.linspace(0.3, 0.1, k) + np.random.default_rng(0).normal(0, 0.01, k)
    funcs = np.column_stack([strict, np.full(k, 0.2)])

    assert abs(fixed_pay_of(funcs, strict + 0.2) - 0.2) < 1e-9
    assert abs(fixed_pay_of(funcs, 2 * strict + 0.5 * 0.2) - 0.1) < 1e-9  # weighted: the bonus's share
    assert fixed_pay_of(funcs, np.random.default_rng(1).uniform(0.3, 0.6, k)) == 0.0  # not their sum
    assert fixed_pay_of(np.column_stack([strict, strict]), strict * 2) == 0.0  # none stood still
    assert fixed_pay_of(funcs[:3], (strict + 0.2)[:3]) == 0.0  # too few evaluations to tell


def test_transient_episode_is_listed_resolved_and_the_run_ends_clean(tmp_path):
    rng = np.random.default_rng(7)
    evals = np.r_[[0.70, 0.72, 0.73, 0.73, 0.735], [0.68, 0.675, 0.68, 0.678], 0.74 + rng.normal(0, 0.004, 8)]
    steps = np.arange(1, 10 * len(evals) + 1)
    reward = np.linspace(0.4, 0.6, len(steps)) + rng.normal(0, 0.02, len(steps))
    out, (findings, verdict) = _judge(tmp_path, _log(tmp_path, steps, reward, evals, 10), eval_size=2000)
    assert verdict["ends"] == ["clean"] and not verdict["fails"]
    assert [r["kind"] for r in verdict["resolved"]] == ["decoupling"]
    assert main(["check", str(out), "--fail-on", "warning"]) == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_fall_from_the_first_evaluation_sustained_over_the_rest_is_an_episode(tmp_path, seed):
    """The shape of the shared verl DAPO run: MATH-500 (4,000 samples) at its best on the first evaluation,
    2-3 points below over the next four while the pass rate rises (2.7 here: the shared run reaches 3
    standard errors only with its three other held-out sets), then a recovery past it. No block comes
    before the first evaluation, so it alone is the best level, judged against all four that follow."""
    rng = np.random.default_rng(seed)
    evals = np.r_[0.766, 0.739 + rng.normal(0, 0.003, 4), [0.765, 0.78, 0.78, 0.79, 0.80, 0.81]]
    steps = np.arange(1, 10 * len(evals) + 1)
    reward = np.interp(steps, [1, 10, 30, 150], [0.13, 0.15, 0.19, 0.21]) + rng.normal(0, 0.01, len(steps))
    out, (findings, verdict) = _judge(tmp_path, _log(tmp_path, steps, reward, evals, 10), eval_size=4000)
    dec = [f for f in findings if f.kind == "decoupling"]
    assert dec and dec[0].evidence["peak_block"] == [10] and "first evaluation alone" in dec[0].message
    assert verdict["ends"] == ["clean"] and [r["kind"] for r in verdict["resolved"]] == ["decoupling"]


def test_a_first_evaluation_is_no_level_against_a_short_one_or_without_sampling_noise(tmp_path):
    """The same first-evaluation peak judged against three evaluations (too short to be the rest of a run's
    level), or without an eval size (the spread between four evaluations cannot be estimated): nothing."""
    rng = np.random.default_rng(3)
    short = np.r_[0.766, 0.735, 0.737, 0.736, 0.77, 0.78, 0.79, 0.80]
    steps = np.arange(1, 10 * len(short) + 1)
    reward = np.linspace(0.13, 0.21, len(steps)) + rng.normal(0, 0.01, len(steps))
    _, (findings, _) = _judge(tmp_path, _log(tmp_path, steps, reward, short, 10, name="short"), eval_size=4000)
    assert not [f for f in findings if f.kind == "decoupling"]
    sustained = np.r_[0.766, 0.744, 0.745, 0.743, 0.744, 0.77, 0.78, 0.79, 0.80]
    steps = np.arange(1, 10 * len(sustained) + 1)
    reward = np.linspace(0.13, 0.21, len(steps)) + rng.normal(0, 0.01, len(steps))
    _, (findings, _) = _judge(tmp_path, _log(tmp_path, steps, reward, sustained, 10, name="nosize"))
    assert not [f for f in findings if f.kind == "decoupling"]


def test_fail_on_and_json_verdict(tmp_path, capsys):
    """--fail-on picks the severity that fails CI; --json keeps its shape and adds the verdict."""
    rng = np.random.default_rng(8)
    evals = np.r_[[0.5, 0.6, 0.7, 0.72, 0.71], 0.55 + rng.normal(0, 0.01, 6)]
    steps = np.arange(1, 10 * len(evals) + 1)
    out, _ = _judge(tmp_path, _log(tmp_path, steps, np.linspace(0.4, 0.6, len(steps)), evals, 10), eval_size=500)
    assert main(["check", str(out), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert {"run", "path", "status", "findings", "verdict"} <= set(doc)
    assert doc["verdict"]["ends"] == ["decoupled"] and doc["verdict"]["fail_on"] == "critical"
    assert doc["verdict"]["best_checkpoint"]["step"] in (30, 40, 50)
    assert main(["check", str(out), "--fail-on", "info"]) == 1
    text_out = tmp_path / "o.txt"
    assert main(["check", str(out)]) == 1
    text_out.write_text(capsys.readouterr().out)
    assert "ends DECOUPLED" in text_out.read_text()


def test_the_margin_is_configurable(tmp_path):
    """A 2.8-point fall at 0.90 accuracy is past Cohen's h 0.05 and under 0.2: --margin decides, and a
    training config's [monitor] margin_h reaches the live monitor."""
    from training.config import ConfigError, MonitorCfg

    rng = np.random.default_rng(3)
    evals = np.r_[[0.88, 0.89, 0.895, 0.904, 0.9, 0.898], 0.878 + rng.normal(0, 0.006, 30)]
    steps = np.arange(1, 10 * len(evals) + 1)
    out, _ = _judge(tmp_path, _log(tmp_path, steps, 0.945 + rng.normal(0, 0.01, len(steps)), evals, 10), eval_size=1319)
    assert main(["check", str(out), "--margin", "0.05"]) == 1
    assert main(["check", str(out), "--margin", "0.2"]) == 0
    assert MonitorCfg(margin_h=0.2).monitor_config().params.decoupling.margin_h == 0.2
    with pytest.raises(ConfigError, match="margin_h"):
        MonitorCfg(margin_h=2.0)


def test_the_accuracy_panel_draws_both_levels_and_labels_the_drop(tmp_path):
    """A fall of a few points is invisible on a [0, 1] axis: the panel draws the best and the current
    level and labels the drop in points (the same figure serves the dashboard and the HTML report)."""
    import re

    from diag.detect import detect_all
    from diag.figures import reward_vs_accuracy

    rng = np.random.default_rng(9)
    evals = np.r_[[0.55, 0.6, 0.62, 0.63, 0.625], 0.60 + rng.normal(0, 0.004, 8)]
    steps = np.arange(1, 10 * len(evals) + 1)
    out, (findings, _) = _judge(tmp_path, _log(tmp_path, steps, np.linspace(0.4, 0.5, len(steps)), evals, 10),
                                eval_size=2000)
    run = diag.open_run(out)
    fig = reward_vs_accuracy(run.steps, run.evals, run.reward_funcs, [f.to_dict() for f in detect_all(run)]).to_plotly_json()
    names = {t.get("name") for t in fig["data"]}
    assert {"best level", "current level"} <= names
    drops = [a["text"] for a in fig["layout"]["annotations"] if re.fullmatch(r"-\d+\.\d points \(firing\)", a.get("text", ""))]
    assert len(drops) == 1 and 1.5 <= float(drops[0][1:].split()[0]) <= 4.5


@pytest.mark.parametrize("second", ["eval_format_accuracy", "eval_checked_accuracy"])
def test_one_grading_of_the_same_completions_is_one_piece_of_evidence(tmp_path, second):
    """A hand-written loop (1,024 items, one sample each): accuracy and a second grading of the same
    completions rise together to ~0.81, then both sit at 0.80-0.84 for 130 steps (best single evaluation
    0.838, the last ones 0.80-0.81). The second series moves with the first at every evaluation: named as a
    format grading it is not a second set; named neutrally, its correlation discounts the combination. Either
    way the plateau gets no critical and no warning firing at its end."""
    acc = np.array([0.60, 0.68, 0.74, 0.78, 0.81, 0.82, 0.815, 0.838, 0.825, 0.81, 0.83, 0.82, 0.815, 0.825,
                    0.812, 0.805, 0.80, 0.81])
    graded = acc + 0.12 + np.random.default_rng(5).normal(0, 0.002, len(acc))
    steps = np.arange(1, 10 * len(acc) + 1)
    reward = 0.8 + np.random.default_rng(6).normal(0, 0.01, len(steps))
    path = _log(tmp_path, steps, reward, acc, 10)
    state = json.loads(path.read_text())
    for row in state["log_history"]:
        if "eval_accuracy" in row:
            row[second] = float(graded[row["step"] // 10 - 1])
    path.write_text(json.dumps(state))
    out, (findings, verdict) = _judge(tmp_path, path, eval_size=1024)
    firing = [f for f in findings if f.firing and f.severity in ("warning", "critical")]
    assert not firing, [f.message for f in firing]
    assert main(["check", str(out), "--fail-on", "warning"]) == 0


def test_independent_sets_still_combine_and_say_their_correlation(tmp_path):
    """Two sets of different items whose evaluation-to-evaluation noise is independent: a fall on both is
    combined (the finding names the other set and the correlation it was discounted by)."""
    rng = np.random.default_rng(7)
    level = np.r_[np.full(10, 0.55), np.full(12, 0.525)]
    acc = level + rng.normal(0, 0.008, len(level))
    other = level - 0.2 + rng.normal(0, 0.008, len(level))
    steps = np.arange(1, 10 * len(acc) + 1)
    reward = 0.8 + rng.normal(0, 0.01, len(steps))
    path = _log(tmp_path, steps, reward, acc, 10)
    state = json.loads(path.read_text())
    for row in state["log_history"]:
        if "eval_accuracy" in row:
            row["eval_mmlu_accuracy"] = float(other[row["step"] // 10 - 1])
    path.write_text(json.dumps(state))
    _, (findings, _) = _judge(tmp_path, path, eval_size=2000)
    dec = [f for f in findings if f.kind == "decoupling"]
    assert dec and dec[-1].evidence["other_sets"], [f.message for f in findings]
    assert 0 <= dec[-1].evidence["other_sets"][0]["correlation"] < 0.6 and "correlation" in dec[-1].message


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_joint_dip_both_series_recover_from_is_not_decoupling(tmp_path, seed):
    """A weak hand-written loop on 1,024 items: a plateau near 0.24, then accuracy dips 0.243 -> 0.173 over two
    evaluations while the batch reward dips 0.304 -> 0.264 over the same steps; both are back ten steps later.
    The reward fell with accuracy (beyond its own noise): a joint dip, at most information."""
    rng = np.random.default_rng(40 + seed)
    evals = np.r_[0.24 + rng.normal(0, 0.008, 12), [0.21, 0.173], 0.24 + rng.normal(0, 0.008, 8)]
    steps = np.arange(1, 10 * len(evals) + 1)
    dip = np.interp(steps, [119, 125, 127, 133], [0.0, 0.04, 0.04, 0.0])
    reward = 0.304 - dip + rng.normal(0, 0.02, len(steps))
    out, (findings, verdict) = _judge(tmp_path, _log(tmp_path, steps, reward, evals, 10), eval_size=1024)
    assert not [f for f in findings if f.kind == "decoupling" and f.severity in ("warning", "critical")]
    assert main(["check", str(out), "--fail-on", "warning"]) == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_format_carried_rise_that_lasts_stays_firing(tmp_path, seed):
    """The VLM DAPO shape to its end: the format component 0.29 -> 0.76 over the first 120 steps, then paid at
    its high to step 260; accuracy on 32 items flat between 0.5 and 0.78 throughout. The reward stops rising,
    the format component keeps paying, accuracy never catches up: the stall is still firing at the end."""
    rng = np.random.default_rng(50 + seed)
    steps = np.arange(1, 261)
    fmt = np.interp(steps, [1, 120, 260], [0.29, 0.76, 0.76]) + rng.normal(0, 0.03, 260)
    acc_part = 0.96 + rng.normal(0, 0.05, 260)
    evals = rng.choice(np.arange(16, 26) / 32, 26)
    path = _log(tmp_path, steps, fmt + acc_part, evals, 10, components={"accuracy": acc_part, "format": fmt})
    out, (findings, verdict) = _judge(tmp_path, path, eval_size=32)
    stall = [f for f in findings if f.kind == "reward_stall" and f.is_alert]
    assert stall and stall[-1].firing and stall[-1].evidence["carrier"] == "format"
    assert main(["check", str(out), "--fail-on", "warning"]) == 1


def test_a_stall_ends_when_accuracy_catches_up(tmp_path):
    """The same format rise, but from step 150 held-out accuracy (on 1,000 items) climbs 0.50 -> 0.70: the
    stall resolves, saying why."""
    rng = np.random.default_rng(7)
    steps = np.arange(1, 261)
    fmt = np.interp(steps, [1, 120, 260], [0.29, 0.76, 0.76]) + rng.normal(0, 0.03, 260)
    acc_part = 0.96 + rng.normal(0, 0.05, 260)
    evals = np.interp(np.arange(10, 261, 10), [10, 150, 260], [0.5, 0.5, 0.7]) + rng.normal(0, 0.01, 26)
    path = _log(tmp_path, steps, fmt + acc_part, evals, 10, components={"accuracy": acc_part, "format": fmt})
    _, (findings, _) = _judge(tmp_path, path, eval_size=1000)
    stall = [f for f in findings if f.kind == "reward_stall" and f.is_alert]
    assert stall and not stall[-1].firing and "caught up" in stall[-1].message


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_stall_carried_by_the_tasks_own_check_is_information(tmp_path, seed):
    """A healthy run whose accuracy reward keeps rising on the training prompts (0.45 -> 0.80) after held-out
    accuracy (500 items) has flattened at 0.55, a format reward paid alike throughout: the gap is the policy
    fitting its training prompts, not a reward that lies. Information, and never 'pays for something the
    verifier does not'."""
    rng = np.random.default_rng(60 + seed)
    steps = np.arange(1, 201)
    acc_r = np.linspace(0.45, 0.80, 200) + rng.normal(0, 0.03, 200)
    fmt = 0.98 + rng.normal(0, 0.01, 200)
    evals = np.interp(np.arange(10, 201, 10), [10, 60, 200], [0.45, 0.55, 0.55]) + rng.normal(0, 0.01, 20)
    path = _log(tmp_path, steps, acc_r + fmt, evals, 10, components={"accuracy_reward": acc_r, "format_reward": fmt})
    out, (findings, _) = _judge(tmp_path, path, eval_size=500)
    stall = [f for f in findings if f.kind == "reward_stall"]
    assert stall and all(f.severity == "info" and "does not" not in f.message for f in stall)
    assert any("fitting its training prompts" in f.message for f in stall)
    assert main(["check", str(out), "--fail-on", "warning"]) == 0


def test_the_real_smollm2_collapse_is_a_signal_gap_not_decoupling():
    """A real run of the collapse configuration (tests/fixtures/smollm2-collapse): the best level is the first
    evaluation, where one step's reward is one draw of eight completions. The reward's reference takes the
    steps after it, with their noise: the reward fell with accuracy, a collapse, and the run's verdict is its
    signal gap."""
    from pathlib import Path

    run = diag.open_run(Path(__file__).parent / "fixtures" / "smollm2-collapse" / "run")
    findings, verdict = check_run(run)
    assert any(f.kind == "signal_gap" and f.firing for f in findings)
    assert not [f for f in findings if f.kind == "decoupling" and f.severity in ("warning", "critical")]
    assert "decoupled" not in verdict["ends"]
