"""Several held-out sets: the others corroborate a fall of the judged set, copies and averages are left
out, the live monitor sees what the offline check sees, and eval sizes can be given per set."""

import json

import numpy as np
import polars as pl
import pytest

import diag
from diag import schema
from diag.cli import main
from diag.detect import align, detect_decoupling
from diag.detect.align import independent
from diag.detect.decoupling import fold
from diag.importers import import_log
from diag.monitor import Monitor, MonitorConfig
from diag.sizes import parse_eval_size, size_of
from tests.test_detect import steps_frame

# ten evaluations at 0.50, then four 5 points lower: on 500 items a level of four sits under 3 standard
# errors below the best block of three once that block is corrected for being the best of a plateau (a
# warning needs 3), Cohen's h over the 0.05 margin
LEVEL = [0.502, 0.498, 0.501, 0.499, 0.500, 0.502, 0.498, 0.501, 0.499, 0.500, 0.450, 0.451, 0.449, 0.450]


def frames(sets: dict[str, list[float]], n_items: int = 500) -> pl.DataFrame:
    rows = [{"step": 10 * k, "eval_set": name, "metric": "accuracy", "bucket": "all", "value": v, "n": n_items}
            for k in range(len(LEVEL)) for name, series in sets.items() for v in [series[k]]]
    return schema.conform("evals", rows)


def rising_steps() -> pl.DataFrame:
    return steps_frame(np.linspace(0.4, 0.6, 10 * len(LEVEL)))


def decouplings(sets: dict[str, list[float]]):
    return [f for f in detect_decoupling(align(rising_steps(), frames(sets), None, ["r"])) if f.kind == "decoupling"]


def test_one_set_falling_within_noise_is_not_judged_alone():
    assert decouplings({"math": LEVEL}) == []


def test_other_sets_falling_at_the_same_steps_corroborate_it():
    shifted = [v + 0.2 for v in LEVEL]  # another benchmark, another level, the same fall
    found = decouplings({"math": LEVEL, "aime": [v - 0.3 for v in LEVEL], "mmlu": shifted})
    assert found, "three sets falling 5 points at the same checkpoints are evidence one set is not"
    f = found[0]
    assert f.evidence["eval_set"] == "math"
    assert f.evidence["z_alone"] < 3.0 <= f.evidence["z"]
    assert {o["eval_set"] for o in f.evidence["other_sets"]} == {"aime", "mmlu"}
    assert "aime" in f.message and "combined" in f.message


def test_other_sets_that_hold_leave_the_verdict_to_the_judged_set():
    flat = [0.3 + 0.002 * (-1) ** k for k in range(len(LEVEL))]
    assert decouplings({"math": LEVEL, "aime": flat, "mmlu": [v + 0.4 for v in flat]}) == []


def test_a_copy_or_an_average_is_not_a_second_measurement():
    """A log's eval_accuracy copied from MATH-500, or an AIME average beside AIME24 and AIME25, would
    double their evidence: they are left out."""
    x, y = [0.8 * v for v in LEVEL], [0.5 * v for v in LEVEL]
    xy = [(p + q) / 2 for p, q in zip(x, y)]
    a = align(rising_steps(), frames({"acc": LEVEL, "math": LEVEL, "x": x, "y": y, "xy": xy}), None, ["r"])
    assert a.eval_set == "acc" and sorted(a.companions) == ["x", "y"]
    assert decouplings({"acc": LEVEL, "math": LEVEL}) == []  # the copy does not corroborate


def test_independent_needs_three_shared_steps_to_call_a_copy():
    x = np.array([0.5, 0.6, np.nan, np.nan])
    kept = independent(np.array([0.5, 0.6, 0.7, 0.8]), {"x": (x, np.full(4, 100.0))})
    assert list(kept) == ["x"]  # two shared values say nothing


def test_the_monitor_judges_with_the_other_sets_as_the_offline_check_does():
    """Each set arrives as its own event (the recorder emits one per set): the primary's evaluation is
    judged once the other sets of its step have reported, so live and offline see the same evidence."""
    sets = {"math": LEVEL, "aime": [v - 0.3 for v in LEVEL], "mmlu": [v + 0.2 for v in LEVEL]}
    steps, ev = rising_steps().to_dicts(), frames(sets)
    mon = Monitor(None, MonitorConfig(console=False), func_names=["r"])
    i = 0
    for e in sorted(set(ev["step"].to_list())):
        while i < len(steps) and steps[i]["step"] <= e:
            mon("step", steps[i])
            i += 1
        for name in sets:
            mon("eval", {"frame": ev.filter((pl.col("step") == e) & (pl.col("eval_set") == name)), "correct": None})
    for row in steps[i:]:
        mon("step", row)
    mon.close()
    online = {(f.key, f.severity, f.state) for f in fold(mon.findings) if f.kind == "decoupling"}
    offline = {(f.key, f.severity, f.state) for f in decouplings(sets)}
    assert online == offline and online


def test_eval_size_per_set():
    assert parse_eval_size("4000") == 4000
    assert parse_eval_size("eval_math500=4000, eval_aime24=240") == {"eval_math500": 4000, "eval_aime24": 240}
    sizes = parse_eval_size("1000,eval_aime24=240")
    assert size_of(sizes, "eval_aime24") == 240 and size_of(sizes, "other") == 1000
    assert size_of({"a": 5}, "b") is None and size_of(None, "a") is None
    for bad in ("", "x=", "a=0", "four"):
        with pytest.raises(ValueError, match="--eval-size"):
            parse_eval_size(bad)


def test_trainer_state_imports_every_held_out_set_with_its_size(tmp_path):
    hist = [{"step": s, "reward": 0.5, "rewards/acc/mean": 0.5} for s in range(1, 31)]
    hist += [{"step": s, "eval_accuracy": 0.7, "eval_math500": 0.7, "eval_aime24": 0.2, "eval_loss": 0.4,
              "eval_runtime": 12.0, "eval_samples_per_second": 3.0, "eval_reward": 0.9} for s in (10, 20, 30)]
    src = tmp_path / "trainer_state.json"
    src.write_text(json.dumps({"log_history": hist}))
    path, notes = import_log(src, root=str(tmp_path / "runs"), eval_size={"eval_accuracy": 4000, "eval_aime24": 240})
    run = diag.open_run(path)
    sizes = dict(run.evals.group_by("eval_set").agg(pl.col("n").first()).iter_rows())
    assert sizes == {"eval_accuracy": 4000, "eval_math500": None, "eval_aime24": 240}
    assert any("other held-out sets: eval_aime24, eval_math500" in n for n in notes)
    assert any("without an eval size (eval_math500)" in n for n in notes)


def test_check_takes_eval_sizes_per_set_and_names_a_bad_one(tmp_path, capsys):
    hist = [{"step": s, "reward": 0.5} for s in range(1, 61)]
    hist += [{"step": s, "eval_accuracy": 0.7, "eval_aime24": 0.2} for s in range(10, 61, 10)]
    src = tmp_path / "trainer_state.json"
    src.write_text(json.dumps({"log_history": hist}))
    path, _ = import_log(src, root=str(tmp_path / "runs"))
    assert main(["check", str(path), "--eval-size", "eval_accuracy=4000,eval_aime24=240"]) == 0
    with pytest.raises(SystemExit):
        main(["check", str(path), "--eval-size", "eval_aime24=none"])
    assert "not N or SET=N" in capsys.readouterr().err


def test_check_judges_the_set_named_by_eval_set(tmp_path, capsys):
    """--eval-set picks the held-out set the verdict judges; a name the run lacks is an error naming the sets."""
    rec = diag.Recorder(str(tmp_path), "two", ["r"], group_size=4, flush_secs=0)
    rec.writer.append("steps", schema.conform("steps", rising_steps().to_dicts()))
    flat = [0.3 + 0.002 * (-1) ** k for k in range(len(LEVEL))]
    for k, (hold, fall) in enumerate(zip(flat, [v - 0.1 for v in LEVEL])):
        rec.log_eval_value(10 * k, "holds", hold, n=100_000)
        rec.log_eval_value(10 * k, "falls", fall, n=100_000)
    rec.close()
    path = str(tmp_path / "two")
    assert main(["check", path, "--json"]) == 0
    assert not [f for f in json.loads(capsys.readouterr().out)["findings"] if f["kind"] == "decoupling"]
    assert main(["check", path, "--eval-set", "falls", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert any(f["kind"] == "decoupling" and f["evidence"]["eval_set"] == "falls" for f in out["findings"])
    assert main(["check", path, "--eval-set", "nope"]) == 2
    err = capsys.readouterr().err
    assert "'nope' is not one of its held-out sets" in err and "holds" in err and "falls" in err
