"""Never a crash, always a verdict: generated runs through every importer into check, report and the run page.

Hypothesis draws runs with missing eval sizes, NaN / None / inf values, signed and unbounded rewards,
zero, one or many evaluations, steps logged every k, and writes each in every text format an
importer reads. Whatever the importer accepts, `grpo-diag check` must answer 0 or 1 with findings or
an explicit "not enough data", and the report and the dashboard's run page must render.
"""

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import diag
from diag.cli import main
from diag.detect import detect_all
from diag.importers import ImportFailure, import_log
from diag.report import render

VALUE = st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.just(math.nan), st.just(math.inf), st.none(),
                  st.floats(0, 1))


@st.composite
def series(draw):
    n = draw(st.integers(0, 60))
    every = draw(st.sampled_from([1, 1, 3, 10]))
    scale = draw(st.sampled_from([(0.0, 1.0), (-10.0, 11.0), (0.0, 1000.0)]))
    rows = []
    for i in range(n):
        r = draw(st.one_of(VALUE, st.floats(*scale)))
        z = draw(st.one_of(st.none(), st.floats(0, 1)))
        rows.append({"step": i * every, "reward": r, "zero": z})
    n_eval = draw(st.sampled_from([0, 1, 2, 5, 12]))
    evals = [{"step": k * max(1, n * every // max(1, n_eval)), "acc": draw(st.one_of(st.floats(0, 1), st.none(),
                                                                                   st.just(math.nan))),
              "n": draw(st.sampled_from([None, 20, 300]))} for k in range(n_eval)]
    return rows, evals


def _num(v):
    return None if v is None else v


def write(fmt: str, rows, evals, d):
    """The same series in one importer's format (JSON cannot hold NaN/inf: those go as null there)."""
    def js(v):
        return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v

    if fmt == "trainer-state":
        hist = [{"step": r["step"], "reward": js(r["reward"]), "frac_reward_zero_std": js(r["zero"]), "loss": 0.1}
                for r in rows] + [{"step": e["step"], "eval_accuracy": js(e["acc"])} for e in evals]
        p = d / "trainer_state.json"
        p.write_text(json.dumps({"log_history": hist}))
    elif fmt == "trl-console":
        p = d / "console.log"
        p.write_text("\n".join([f"{{'loss': 0.1, 'reward': {r['reward']!r}, 'frac_reward_zero_std': {r['zero']!r}}}"
                                for r in rows] + [f"{{'eval_accuracy': {e['acc']!r}}}" for e in evals]))
    elif fmt == "verl-console":
        p = d / "verl.log"
        by = {e["step"]: e for e in evals}
        p.write_text("\n".join(f"step:{r['step']} - critic/score/mean:{r['reward']} - "
                               + (f"val-core/openai/gsm8k/reward/mean@1:{by[r['step']]['acc']}" if r["step"] in by else "x:1")
                               for r in rows))
    elif fmt == "tinker":
        p = d / "metrics.jsonl"
        by = {e["step"]: e for e in evals}
        lines = []
        for r in rows:
            row = {"step": r["step"], "env/all/reward/total": js(r["reward"]),
                   "env/all/by_group/frac_mixed": None if r["zero"] is None else 1 - r["zero"]}
            if r["step"] in by:
                row.update({"test/env/all/reward/total": js(by[r["step"]]["acc"]),
                            "test/env/all/total_episodes": by[r["step"]]["n"]})
            lines.append(json.dumps(row))
        p.write_text("\n".join(lines))
    else:  # generic JSONL with a mapping
        p = d / "loop.jsonl"
        p.write_text("\n".join([json.dumps({"it": r["step"], "r": js(r["reward"]), "z": js(r["zero"])}) for r in rows]
                               + [json.dumps({"it": e["step"], "acc": js(e["acc"]), "n": e["n"]}) for e in evals]))
    return p


FORMATS = ("trainer-state", "trl-console", "verl-console", "tinker", "generic")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(data=series(), fmt=st.sampled_from(FORMATS), reward_range=st.sampled_from([None, (0.0, 1.0), (-10.0, 11.0)]))
def test_every_importable_run_gets_a_verdict(tmp_path_factory, data, fmt, reward_range):
    from dashboards import query
    from dashboards.pages import run as run_page

    rows, evals = data
    d = tmp_path_factory.mktemp("prop")
    src = write(fmt, rows, evals, d)
    maps = ["step=it", "reward=r", "frac_zero_signal=z", "accuracy=acc", "eval_size=n"] if fmt == "generic" else None
    try:
        out, _ = import_log(src, fmt=fmt, root=str(d / "runs"), name="p", maps=maps, reward_range=reward_range)
    except ImportFailure:
        return  # refused with a message naming the file: allowed; a crash is not
    run = diag.open_run(out)
    findings = detect_all(run)
    kinds = {f.kind for f in findings}
    # every detector either judged or said what it lacked
    assert ("no_data" in kinds) or kinds & {"signal_gap", "saturated", "decoupling", "reward_stall", "best_checkpoint"} \
        or run.steps.height > 0
    for f in findings:
        if f.kind == "no_data":
            assert "Not enough data" in f.message
    assert main(["check", str(out)]) in (0, 1)
    assert main(["check", str(out), "--eval-size", "300", "--reward-range=-10,11"]) in (0, 1)
    for f_ in ("json", "md", "html"):
        assert render([run], f_)
    assert run_page.render(query.Store(d / "runs"), "p", -1) is not None


@pytest.mark.parametrize("eval_size", [None, 1319])
def test_check_on_an_imported_fall_never_crashes(tmp_path, eval_size, capsys):
    """The crash this issue began with: an imported run whose accuracy falls, no eval size."""
    hist = [{"step": s, "reward": 0.5 + 0.001 * s, "loss": 0.1} for s in range(1, 201)]
    accs = [0.5, 0.6, 0.7, 0.72, 0.71, 0.6, 0.5, 0.4, 0.35, 0.3, 0.3]
    hist += [{"step": 20 * k, "eval_accuracy": a} for k, a in enumerate(accs)]
    p = tmp_path / "trainer_state.json"
    p.write_text(json.dumps({"log_history": hist}))
    out, _ = import_log(p, root=str(tmp_path / "runs"), eval_size=eval_size)
    assert main(["check", str(out)]) == 1
    text = capsys.readouterr().out
    assert "decoupling" in text and "FIRING" in text
    assert ("weaker test" in text) == (eval_size is None)
