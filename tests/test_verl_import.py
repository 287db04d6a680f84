"""verl's rollout dumps, validation dumps and file logger, written by verl 0.9.1's own code
(tests/fixtures/verl/generate.py), imported at full fidelity: groups, signal classes, the signal-gap
verdict and per-data-source validation. Labels in tests/fixtures/verl/LABELS.md were written first."""

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import diag
from diag.detect import detect_all as detect
from diag.importers import ImportFailure, detect_format, import_log

FIX = Path(__file__).parent / "fixtures" / "verl"
TRAINERS = {"legacy": ("math_dapo", "acc"), "v1": ("openai/gsm8k", "reward")}


def verl_metrics(trainer: str) -> dict[int, dict]:
    out: dict[int, dict] = {}
    for line in (FIX / trainer / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        out.setdefault(row["step"], {}).update(row["data"])
    return out


@pytest.fixture(scope="module", params=sorted(TRAINERS))
def imported(request, tmp_path_factory):
    t = request.param
    root = tmp_path_factory.mktemp(f"verl-{t}")
    path, notes = import_log(FIX / t / "rollout", root=str(root), name=t, validation_dir=str(FIX / t / "validation"),
                             metrics=str(FIX / t / "metrics.jsonl"))
    return t, diag.open_run(path), notes


def test_formats_are_recognised():
    assert detect_format(FIX / "legacy" / "rollout") == "verl-rollouts"
    assert detect_format(FIX / "v1" / "validation") == "verl-rollouts"
    assert detect_format(FIX / "legacy" / "metrics.jsonl") == "verl-file"


def test_legacy_dump_is_really_reordered():
    """The legacy fixture's lines are in verl's batch-balancing order: a prompt's rollouts are not
    consecutive, so grouping by position would be wrong (and no uid tells the groups apart)."""
    rows = [json.loads(x) for x in (FIX / "legacy" / "rollout" / "3.jsonl").read_text().splitlines()]
    assert "uid" not in rows[0] and "acc" in rows[0]
    runs = sum(1 for a, b in zip(rows, rows[1:]) if a["input"] != b["input"]) + 1
    assert runs > len({r["input"] for r in rows})
    v1 = json.loads((FIX / "v1" / "rollout" / "3.jsonl").read_text().splitlines()[0])
    assert "uid" in v1 and "acc" not in v1


def test_groups_are_rebuilt_whole(imported):
    t, run, notes = imported
    g = run.groups.filter(pl.col("mode") == "train")
    per_step = g.group_by("step").agg(pl.len().alias("groups"), pl.col("G").min().alias("gmin"),
                                      pl.col("G").max().alias("gmax")).sort("step")
    assert per_step["step"].to_list() == list(range(1, 31))
    assert set(per_step["groups"]) == {8} and set(per_step["gmin"]) == {4} and set(per_step["gmax"]) == {4}
    # every rebuilt group holds one prompt's rollouts, and each step's prompts are distinct groups
    c = run.completions.filter(pl.col("mode") == "train")
    assert c.group_by("step", "group").agg(pl.col("prompt").n_unique().alias("k"))["k"].max() == 1
    assert set(g["signal"]) <= {"all_fail", "all_pass", "mixed"}
    assert run.meta["framework"] == "verl" and run.meta["verl_trainer"].startswith("legacy" if t == "legacy" else "new")
    assert any("group size 4" in n for n in notes)


def test_batch_means_equal_verls_own(imported):
    """Our per-step mean score (from the dumped lines) equals verl's critic/score/mean for that step."""
    t, run, _ = imported
    logged = verl_metrics(t)
    steps = run.steps.filter(pl.col("n_groups") > 0)
    ours = dict(zip(steps["step"].to_list(), steps["reward_mean"].to_list()))
    theirs = {s: d["critic/score/mean"] for s, d in logged.items() if "critic/score/mean" in d}
    assert ours == pytest.approx(theirs, abs=1e-6)


def test_validation_per_item_equals_verls_metric(imported):
    """Held-out accuracy rebuilt per item from the validation dumps equals verl's own
    val-core/<source>/<var>/mean@2 at every validation step; each data source is its own eval set."""
    t, run, _ = imported
    source, var = TRAINERS[t]
    acc = run.evals.filter((pl.col("bucket") == "all") & (pl.col("metric") == "accuracy"))
    assert acc["eval_set"][0] == "validation"  # the per-item set is the one detectors read
    per_item = acc.filter(pl.col("eval_set") == "validation").sort("step")
    assert set(per_item["n"]) == {24}
    key = f"val-core/{source}/{var}/mean@2"
    theirs = {s: d[key] for s, d in verl_metrics(t).items() if key in d}
    assert dict(zip(per_item["step"].to_list(), per_item["value"].to_list())) == pytest.approx(theirs, abs=1e-9)
    logged = acc.filter(pl.col("eval_set") == source).sort("step")
    assert dict(zip(logged["step"].to_list(), logged["value"].to_list())) == pytest.approx(theirs, abs=1e-9)
    assert run.eval_items.filter(pl.col("eval_set") == "validation").height == 24 * len(theirs)


def test_verdicts_match_the_labels_written_first(imported):
    """LABELS.md: both fixtures have a firing signal gap and no decoupling."""
    _, run, _ = imported
    findings = detect(run)
    gap = [f for f in findings if f.kind == "signal_gap"]
    assert gap and gap[-1].state == "firing"
    assert not [f for f in findings if f.kind == "decoupling" and f.firing]


def test_check_and_report_on_an_imported_verl_run(imported, tmp_path):
    _, run, _ = imported
    proc = subprocess.run([sys.executable, "-m", "diag.cli", "check", str(run.path), "--fail-on", "warning"],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "signal_gap" in proc.stdout and "FIRING" in proc.stdout
    out = tmp_path / "r.html"
    proc = subprocess.run([sys.executable, "-m", "diag.cli", "report", str(run.path), "-o", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "signal_gap" in out.read_text()


def test_dashboard_shows_groups_signal_and_verdict(imported):
    from dashboards import query
    from dashboards.pages import run as run_page

    t, run, _ = imported
    out = run_page.render(query.Store(run.path.parent), run.name, -1)
    signal = out["figs"][1]
    assert any(tr.name == "all_fail" and len(tr.x) >= 30 for tr in signal.data), \
        [tr.name for tr in signal.data]
    heat = out["figs"][3]
    assert heat.data and heat.data[0].z is not None
    assert "signal_gap" in str(out["alerts"]) and "FIRING" in str(out["alerts"])
    rows = run_page.completion_rows(run, "all_fail")
    assert rows and all(r["signal"] == "all_fail" for r in rows)


def test_file_logger_alone(tmp_path):
    path, notes = import_log(FIX / "legacy" / "metrics.jsonl", root=str(tmp_path), name="flog")
    run = diag.open_run(path)
    assert run.meta["format"] == "verl-file"
    assert run.steps.filter(pl.col("reward_mean").is_not_null()).height == 30
    sets = set(run.evals["eval_set"])
    assert sets == {"math_dapo"}
    assert run.meta["eval_keys"] == {"math_dapo": "val-core/math_dapo/acc/mean@2"}
    assert run.scalars.filter(pl.col("key") == "response_length/mean").height == 30


def test_multi_output_sessions_count_once(tmp_path):
    """New trainer, an agent loop with two outputs in one session: the session is one completion,
    its final output (which carries the session's reward)."""
    d = tmp_path / "rollout"
    d.mkdir()
    rows = []
    for session in range(4):
        rows.append({"input": "q", "output": "tool call", "gts": "1", "score": 0.0, "step": 1, "uid": f"p1_{session}_0"})
        rows.append({"input": "q", "output": f"final {session}", "gts": "1", "score": float(session == 0), "step": 1,
                     "uid": f"p1_{session}_1"})
    (d / "1.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    run = diag.open_run(import_log(d, root=str(tmp_path / "runs"), name="mo")[0])
    g = run.groups
    assert g.height == 1 and g["G"][0] == 4 and g["n_pass"][0] == 1 and g["signal"][0] == "mixed"


def test_bad_input_names_the_file_line_and_fix(tmp_path):
    d = tmp_path / "rollout"
    d.mkdir()
    (d / "1.jsonl").write_text('{"input": "q", "output": "a", "gts": "1", "score": 1.0, "step": 1}\n{"input": "q"}\n')
    with pytest.raises(ImportFailure, match=r"1\.jsonl: line 2 lacks \['output', 'score'\].*rollout_data_dir"):
        import_log(d, root=str(tmp_path / "runs"), name="bad")
    assert not (tmp_path / "runs" / "bad").exists()  # nothing half-written
    with pytest.raises(ImportFailure, match="--metrics go with a verl rollout dump"):
        import_log(FIX / "legacy" / "metrics.jsonl", root=str(tmp_path / "runs"), metrics="x.jsonl")
    with pytest.raises(ImportFailure, match="--validation-dir at verl's trainer.validation_data_dir"):
        import_log(FIX / "legacy" / "rollout", root=str(tmp_path / "runs"), name="b2", validation_dir=str(tmp_path))
    flog = tmp_path / "m.jsonl"
    flog.write_text('{"step": 1, "data": {"a": 1}}\n{"step": "x", "data": {}}\n')
    with pytest.raises(ImportFailure, match=r"m\.jsonl: line 2 has step 'x'"):
        import_log(flog, root=str(tmp_path / "runs"), name="b3")
