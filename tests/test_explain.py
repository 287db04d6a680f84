"""`grpo-diag explain`: how a reward is being gamed, validated like a detector (issue: say how the reward
is being gamed). Runs are written through diag.Recorder (benchmarks/planted.py): a planted habit must be
named among the top three patterns, a run without one must get none."""

import json
import sys
from pathlib import Path

import pytest

import diag
from diag.cli import main
from diag.explain import explain_run, headline

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import planted  # noqa: E402


@pytest.mark.parametrize("habit", ["phrase", "spray"])
def test_a_planted_habit_is_named_among_the_top_three_with_examples(tmp_path, habit):
    r = explain_run(diag.open_run(planted.write_run(str(tmp_path), habit, 3, habit)), since=1)
    assert r["mode"] == "truth" and r["function"] == "lenient"
    assert planted.planted_found(r, habit)
    top = r["patterns"][0]
    assert top["q_value"] <= 0.01 and top["effect"] >= 0.2 and top["examples"]
    ex = top["examples"][0]
    assert ex["completion"] and ex["times"] >= 1 and len(ex["completion"]) <= 250
    trend = dict(next(p for p in r["patterns"][:3] if planted.planted_found({"patterns": [p]}, habit))["trend"])
    steps = sorted(trend)
    assert trend[steps[-1]] > trend[steps[0]]  # the habit grows with the exploit
    assert headline(r).startswith("paid-untrue completions:")


def test_runs_without_an_exploit_get_no_pattern(tmp_path):
    """Untrue completions paid at random (a noisy lenient check), looking like every other completion: no
    pattern on any of 12 seeds (the benchmark counts 100: at most 1 may get one)."""
    found = []
    for s in range(12):
        r = explain_run(diag.open_run(planted.write_run(str(tmp_path), f"null-{s}", 500 + s, None)), since=1)
        assert r["paid_untrue"] >= 20  # judged, not skipped for want of data
        found += r["patterns"]
    assert not found


def test_without_truth_flags_it_compares_what_the_reward_paid_before_and_after(tmp_path):
    path = planted.write_run(str(tmp_path), "no-truth", 4, "phrase", with_truth=False)
    r = explain_run(diag.open_run(path), since=30)
    assert r["mode"] == "before_after" and "before" in r["note"]
    assert planted.planted_found(r, "phrase")
    bare = explain_run(diag.open_run(path))
    assert bare["patterns"] == [] and "truth" in bare["note"]


def test_a_run_without_completions_says_what_to_record(tmp_path):
    rec = diag.Recorder(str(tmp_path), "bare", ["r"], group_size=4, sample_groups=0, background=False)
    rec.log_batch(1, [[1.0], [0.0], [1.0], [0.0]], group_ids=[0, 0, 0, 0], truth=[True, False, True, False])
    rec.close()
    r = explain_run(diag.open_run(tmp_path / "bare"))
    assert r["patterns"] == [] and "not enough data" in r["note"] and "completions" in r["note"]


def test_json_shape_and_the_cli(tmp_path, capsys):
    path = planted.write_run(str(tmp_path), "cli", 5, "phrase")
    assert main(["explain", str(path), "--json", "--since", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"run", "window", "paid_untrue", "true", "patterns"} <= set(out)
    assert out["window"][0] == 1 and out["paid_untrue"] > 20
    p = out["patterns"][0]
    assert {"kind", "feature", "share_paid_untrue", "share_true", "effect", "q_value", "trend", "examples"} <= set(p)
    assert [q["effect"] for q in out["patterns"]] == sorted((q["effect"] for q in out["patterns"]), reverse=True)
    assert main(["explain", str(path), "--since", "1"]) == 0
    text = capsys.readouterr().out
    assert "1. [" in text and "e.g. step" in text
    assert main(["explain", str(path), "--reward", "nope"]) == 2


@pytest.mark.slow
@pytest.mark.xdist_group("demo")
def test_the_demos_deceptive_run_names_length_and_the_answer_among_other_text(demo_runs, capsys):
    run = diag.open_run(demo_runs / "deceptive-reward")
    r = explain_run(run)
    assert r["episode"] is not None and r["function"] == "lenient_correct"
    kinds = [p["kind"] for p in r["patterns"][:3]]
    assert "length" in kinds and "answer_not_alone" in kinds
    assert main(["check", str(demo_runs / "deceptive-reward")]) == 1
    assert "how: paid-untrue completions:" in capsys.readouterr().out


def test_a_truncation_pattern_gets_its_trend_over_the_run():
    """Paid-untrue completions cut at the length cap: the pattern is named, and its trend over the run is
    measured on every completion with the same cap (a shape the trend could not see crashed the page once)."""
    import numpy as np
    import polars as pl

    from diag.explain import contrast

    rng = np.random.default_rng(0)
    rows = []
    for step in range(1, 41):
        for i in range(10):
            cut = rng.random() < min(0.9, step / 40)
            rows.append({"step": step, "prompt": f"{i}+{i}=", "completion": "1 2 3 " * (30 if cut else 1),
                         "length": 64.0 if cut else float(rng.integers(3, 20)), "paid": cut})
    df = pl.DataFrame(rows)
    paid, true = df.filter(pl.col("paid")), df.filter(~pl.col("paid"))
    patterns = contrast(paid, true, df, cap=64)
    cut = next(p for p in patterns if p["kind"] == "truncation")
    assert cut["trend"] and cut["trend"][-1][1] >= cut["trend"][0][1]
