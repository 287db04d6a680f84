"""Every real log imports; parsed values match the DERIVED series; bad input fails clearly and leaves nothing."""

import csv
import json
import os
import sys
import tomllib

import numpy as np
import polars as pl
import pytest
from hypothesis import example, HealthCheck, given, settings
from hypothesis import strategies as st

import diag
from diag.detect import detect_all
from diag.importers import FORMATS, ImportFailure, detect_format, import_log
from tests.conftest import ROOT, real_logs_dir

REAL = real_logs_dir()
ALL_LOGS = sorted([*REAL.glob("*/trainer_state.json"), *REAL.glob("*/training_logs.json"),
                   *REAL.glob("*/exp1a/*.log"), *REAL.glob("verl_*/*.log")])
LABELLED = tomllib.loads((ROOT / "benchmarks" / "real_runs" / "labels.toml").read_text())["run"]
MISSES = {(m["name"], m["expect"]) for m in
          tomllib.loads((ROOT / "benchmarks" / "real_runs" / "misses.toml").read_text()).get("miss", [])}
needs_real = pytest.mark.skipif(not REAL.is_dir() and not os.environ.get("CI"),
                                reason=f"real logs not found at {REAL} (set GRPO_DIAG_REAL_LOGS)")


@needs_real
def test_every_real_log_is_covered():
    assert REAL.is_dir(), f"{REAL}: the real logs must be present in CI (../shared/real_logs)"
    assert len(ALL_LOGS) == 4 + 9 + 2


@needs_real
@pytest.mark.parametrize("entry", LABELLED, ids=lambda e: e["name"])
def test_labelled_real_run_gets_its_preregistered_verdict(entry, tmp_path):
    """Every labelled public run imports through its format or profile, and the detectors' verdict is
    the one written down before they ran (benchmarks/real_runs/labels.toml), except the misses recorded
    with their reason in benchmarks/real_runs/misses.toml (and the README)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from validity import expectation_met

    out, _ = import_log(REAL / entry["path"], fmt=entry.get("format", "auto"), name=entry["name"],
                        root=str(tmp_path), profile=entry.get("profile"), eval_size=entry.get("eval_size"))
    run = diag.open_run(out)
    assert run.steps.height > 0
    findings = detect_all(run)
    for e in entry.get("expect", []):
        met = expectation_met(e, findings)
        if (entry["name"], e) in MISSES:  # a recorded miss (README): still a miss, or remove it from misses.toml
            assert not met, f"{entry['name']}: {e} is now met; remove it from benchmarks/real_runs/misses.toml"
            continue
        assert met, (e, [(f.kind, f.severity, f.state) for f in findings])
    from diag.report import render

    assert render([run], "json")


@needs_real
@pytest.mark.parametrize("path", ALL_LOGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_real_log_imports_and_checks(path, tmp_path):
    out, notes = import_log(path, root=str(tmp_path))
    run = diag.open_run(out)
    assert run.status == "finished" and run.meta["source"] == "import"
    assert run.steps.height > 0 and run.meta["fields"]
    assert notes  # the importer says what it chose
    steps = run.steps["step"].to_list()
    assert steps == sorted(steps)
    detect_all(run)  # never raises on real data
    from diag.report import render

    for fmt in ("json", "md", "html"):
        assert render([run], fmt)


@needs_real
def test_formats_detected():
    assert detect_format(REAL / "telelogs_qwen3_5_4b_grpo" / "trainer_state.json") == "trainer-state"
    assert detect_format(REAL / "trl_console_qwen25_7b_gsm8k" / "exp1a" / "rho1.00_seed42.log") == "trl-console"
    assert detect_format(next((REAL / "verl_ppo_qwen25_0.5b_gsm8k_resp512").glob("*.log"))) == "verl-console"


def _derived(folder: str) -> list[dict]:
    with open(REAL / folder / "DERIVED_series.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("folder, val_key", [
    ("verl_ppo_qwen25_0.5b_gsm8k_resp512", "val/test_score/openai/gsm8k"),
    ("verl_gpg_qwen2_7b_gsm8k_megatron", "val-core/openai/gsm8k/reward/mean@1"),
])
@needs_real
def test_verl_matches_derived_series(folder, val_key, tmp_path):
    log = next((REAL / folder).glob("*.log"))
    out, notes = import_log(log, root=str(tmp_path))
    run = diag.open_run(out)
    assert run.meta["accuracy_key"] == val_key and any(val_key in n for n in notes)
    rows = _derived(folder)
    score = {int(r["step"]): float(r["critic/score/mean"]) for r in rows if r["critic/score/mean"]}
    ours = {s: v for s, v in zip(run.steps["step"].to_list(), run.steps["reward_mean"].to_list()) if v is not None}
    assert set(score) == set(ours)
    assert all(abs(ours[s] - v) < 1e-9 for s, v in score.items())
    val = {int(r["step"]): float(r[val_key]) for r in rows if r[val_key]}
    acc = run.evals.filter(pl.col("bucket") == "all")
    assert dict(zip(acc["step"].to_list(), acc["value"].to_list())) == pytest.approx(val)
    length = {int(r["step"]): float(r["response_length/mean"]) for r in rows if r["response_length/mean"]}
    ours_len = {s: v for s, v in zip(run.steps["step"].to_list(), run.steps["len_mean"].to_list()) if v is not None}
    assert ours_len == pytest.approx(length)


@needs_real
def test_trainer_state_keys_new_and_old(tmp_path):
    new = diag.open_run(import_log(REAL / "telelogs_qwen3_5_4b_grpo" / "trainer_state.json", root=str(tmp_path))[0])
    assert new.reward_funcs == ["answer_reward", "format_reward", "termination_verbosity_reward"]
    assert new.meta["column_sources"]["frac_zero_signal"] == "frac_reward_zero_std"
    assert new.steps["frac_zero_signal"].mean() == pytest.approx(0.63, abs=0.03)
    state = json.loads((REAL / "telelogs_qwen3_5_4b_grpo" / "trainer_state.json").read_text())
    first = state["log_history"][0]
    row = new.steps.row(0, named=True)
    assert row["reward_mean"] == pytest.approx(first["reward"])
    assert row["func_mean"][0] == pytest.approx(first["rewards/answer_reward/mean"])
    old = diag.open_run(import_log(REAL / "unslothgrpo_llama31_8b_gsm8k" / "trainer_state.json",
                                   root=str(tmp_path))[0])
    assert "correctness_reward_func" in old.reward_funcs
    assert old.meta["column_sources"]["len_mean"] == "completion_length"
    assert old.steps["frac_zero_signal"].null_count() == old.steps.height  # old TRL had no such key


@needs_real
def test_zero_signal_run_report_shows_persistent_share(tmp_path):
    from diag.report import build

    run = diag.open_run(import_log(REAL / "telelogs_qwen3_5_4b_grpo" / "trainer_state.json", root=str(tmp_path))[0])
    rep = build(run)
    z = rep["signal"]["frac_zero_signal"]
    assert 0.6 <= z["first_quarter"] <= 0.7 and 0.6 <= z["last_quarter"] <= 0.7
    assert "scale_rewards='batch'" in rep["signal"]["caveat"]
    assert rep["correlation"] == "not available" and rep["decoupling_onset"] == "not available"


@needs_real
def test_trl_console_steps_and_collapse(tmp_path):
    out, notes = import_log(REAL / "trl_console_qwen25_7b_gsm8k" / "exp1a" / "rho1.00_seed42.log", root=str(tmp_path))
    run = diag.open_run(out)
    assert run.steps["step"].to_list() == list(range(5, 201, 5))
    assert any("progress-bar total 200 / 40 rows" in n for n in notes)
    gaps = [f for f in detect_all(run) if f.kind == "signal_gap"]
    assert gaps and gaps[0].window_start >= 100  # the collapse comes in the last quarter


@needs_real
def test_accuracy_key_option(tmp_path):
    log = next((REAL / "verl_ppo_qwen25_0.5b_gsm8k_resp512").glob("*.log"))
    with pytest.raises(ImportFailure, match="--accuracy-key 'val/nope' is not in the log"):
        import_log(log, root=str(tmp_path), accuracy_key="val/nope")
    assert not any(tmp_path.iterdir())  # nothing half-imported
    out, _ = import_log(log, root=str(tmp_path), accuracy_key="critic/score/max", name="k")
    assert diag.open_run(out).evals.height > 0


def test_trl_completions_rebuild_groups(tmp_path):
    comp = tmp_path / "out" / "completions"
    comp.mkdir(parents=True)
    for step in (1, 2):
        rows = []
        for g in range(3):
            for i in range(4):
                ok = float(g == 0 and i % 2 == 0) if step == 1 else float(g < 2)
                rows.append({"step": step, "prompt": f"q{g}", "completion": f"<b>{i}</b>", "correct": ok,
                             "fmt": 0.5, "advantage": 0.0})
        pl.DataFrame(rows).write_parquet(comp / f"completions_{step:05d}.parquet")
    out, _ = import_log(tmp_path / "out", root=str(tmp_path / "runs"))
    run = diag.open_run(out)
    assert run.reward_funcs == ["correct", "fmt"]
    g = run.groups.sort(["step", "group"])
    assert g["G"].to_list() == [4] * 6
    assert g.filter(pl.col("step") == 1)["signal"].to_list() == ["mixed", "tied", "tied"]
    assert run.steps["effective_batch"].to_list() == [4, 0]


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b'{"log_history": [{"step": 1, "loss": 0.1}', "invalid JSON at line 1"),
    (b'{"log_history": {}}', "'log_history' must be a list"),
    (b'{"log_history": []}', "'log_history' is empty"),
    (b'{"log_history": [{"loss": 1}]}', r"log_history\[0\] must be a dict with a 'step' key"),
    (b'{"log_history": [{"step": "x"}]}', r"log_history\[0\]\['step'\] = 'x' is not an integer"),
    (b'{"log_history": [{"step": 1, "reward": 1}], "x": "\xff"}', "not UTF-8"),
    (b"hello world\n", "format not recognised"),
])
def test_bad_inputs_fail_clearly(tmp_path, content, message):
    p = tmp_path / "trainer_state.json"
    p.write_bytes(content)
    with pytest.raises(ImportFailure, match=message) as e:
        import_log(p, root=str(tmp_path / "runs"))
    assert str(p) in str(e.value)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_hostile_values_and_names(tmp_path):
    p = tmp_path / "trainer_state.json"
    p.write_text(json.dumps({"log_history": [
        {"step": 1, "reward": 1e308 * 10, "loss": float("nan"), "rewards/<script>x</script>/mean": 0.5},
        {"step": 2, "reward": 0.5, "loss": 0.1, "rewards/<script>x</script>/mean": 0.4},
    ]}).replace("Infinity", "1e999"))
    out, notes = import_log(p, root=str(tmp_path / "runs"), name="hostile")
    run = diag.open_run(out)
    assert run.steps["reward_mean"].to_list() == [None, 0.5]
    assert any("non-finite" in n for n in notes)
    from diag.report import render

    html = render([run], "html")
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    with pytest.raises(ValueError, match="invalid run name"):
        import_log(p, root=str(tmp_path / "runs"), name="<b>bad</b>")


@needs_real
def test_truncated_console_log_keeps_complete_rows(tmp_path):
    src = (REAL / "trl_console_qwen25_7b_gsm8k" / "exp1a" / "rho0.70_seed42.log").read_bytes()
    cut = src[: src.rindex(b"{'loss") + 40]  # the last dict cut off mid-line, as a crash leaves it
    p = tmp_path / "cut.log"
    p.write_bytes(cut + b"\xff\xfe garbage")
    out, notes = import_log(p, root=str(tmp_path / "runs"), logging_steps=5)
    assert diag.open_run(out).steps.height == 39


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_fuzz_bytes_never_crash_unexpectedly(tmp_path, data):
    p = tmp_path / "fuzz.log"
    p.write_bytes(data)
    for fmt in ("auto", *[f for f in FORMATS if f != "trl-completions"]):
        try:
            import_log(p, fmt=fmt, root=str(tmp_path / "runs"), name="f", overwrite=True)
        except ImportFailure:
            pass


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.dictionaries(st.sampled_from(["step", "reward", "loss", "rewards/a/mean", "eval_accuracy",
                                                 "frac_reward_zero_std"]),
                                st.one_of(st.integers(-10**30, 10**30), st.floats(allow_nan=True), st.text(max_size=5),
                                          st.none())), max_size=8))
@example([{"rewards/a/mean": 0}])  # scalars but no step row: the steps view still has its columns
def test_fuzz_trainer_state(tmp_path, history):
    p = tmp_path / "trainer_state.json"
    p.write_text(json.dumps({"log_history": history}))
    try:
        out, _ = import_log(p, root=str(tmp_path / "runs"), name="f", overwrite=True)
    except ImportFailure:
        return
    run = diag.open_run(out)
    for col in ("reward_mean",):
        vals = [v for v in run.steps[col].to_list() if v is not None] if run.steps.height else []
        assert all(np.isfinite(vals))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["a", "b", "<i>c</i>"]),
                          st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none())), min_size=0, max_size=30))
def test_fuzz_trl_completions(tmp_path, rows):
    d = tmp_path / "fz"
    shutil_rm(d)
    d.mkdir()
    df = pl.DataFrame({"step": [r[0] for r in rows], "prompt": [r[1] for r in rows],
                       "completion": ["x"] * len(rows), "correct": [r[2] for r in rows]},
                      schema={"step": pl.Int64, "prompt": pl.String, "completion": pl.String, "correct": pl.Float64})
    df.write_parquet(d / "completions_00001.parquet")
    try:
        out, _ = import_log(d, root=str(tmp_path / "runs"), name="fz", overwrite=True)
    except ImportFailure:
        return
    run = diag.open_run(out)
    assert run.groups["G"].sum() == len(rows)  # every completion lands in exactly one group


def shutil_rm(path):
    import shutil

    shutil.rmtree(path, ignore_errors=True)
