"""The peer beside grpo-diag in the validity table: rldoctor 0.2.0 fed the same series.

rldoctor reads per-step metric dicts (`rl_doctor.run_from_records`) and resolves keys through its own
alias table (rl_doctor/aliases.py, read to map fairly): the series each run has in this project's store
are handed over under rldoctor's canonical names, so both tools judge exactly the same numbers:

    reward_mean -> reward_mean              per-function means -> rewards/<name>/mean (its components)
    held-out accuracy -> eval_score         len_mean -> response_len_mean
    frac_clipped -> response_len_clip_ratio frac_zero_signal -> zero_var_group_frac
    entropy / grad_norm / kl (whichever key the log used) -> entropy / grad_norm / kl
    group size -> config group_size

rldoctor judges a whole run at once (no alert lifecycle), so its verdict is read as "at the end", and
an expectation is met as follows: a decoupling expectation by its `reward_hacking` check at warning or
worse; a signal gap by `advantage_collapse` at warning or worse; "no critical" by no check at critical;
"no warning at the end" by no check at warning or worse. Installed by `pip install -e ".[peer]"`.
"""

from __future__ import annotations

import math


def available() -> bool:
    try:
        import rl_doctor  # noqa: F401
    except ImportError:
        return False
    return True


def records(run) -> list[dict]:
    """One dict per step (and per evaluation step) under rldoctor's canonical keys."""
    from diag.detect.causes import series
    from diag.summary import accuracy_series, first_eval_set, once_per_step

    s = once_per_step(run.steps)
    rows: dict[int, dict] = {}
    names = list(run.meta.get("reward_funcs") or [])
    cols = {"reward_mean": "reward_mean", "len_mean": "response_len_mean", "frac_clipped": "response_len_clip_ratio",
            "frac_zero_signal": "zero_var_group_frac"}
    for r in s.iter_rows(named=True):
        row = rows.setdefault(int(r["step"]), {"step": int(r["step"])})
        for ours, theirs in cols.items():
            v = r.get(ours)
            if v is not None and math.isfinite(float(v)):
                row[theirs] = float(v)
        if len(names) > 1 and r.get("func_mean"):
            for name, v in zip(names, r["func_mean"]):
                if v is not None and math.isfinite(float(v)):
                    row[f"rewards/{name}/mean"] = float(v)
    for name, (_, steps, values) in series(run.steps).items():
        if name in ("entropy", "grad_norm", "kl"):
            for st, v in zip(steps, values):
                rows.setdefault(int(st), {"step": int(st)})[name] = float(v)
    if run.evals.height:
        acc = accuracy_series(run.evals, first_eval_set(run.evals))
        for st, v in zip(acc["step"].to_list(), acc["value"].to_list()):
            if v is not None:
                rows.setdefault(int(st), {"step": int(st)})["eval_score"] = float(v)
    return [rows[k] for k in sorted(rows)]


def diagnose(run) -> dict:
    """rldoctor's verdict on a run: the worst severity and each check's severity, by name."""
    import rl_doctor

    recs = records(run)
    if not recs:
        return {"worst": "SKIPPED", "checks": {}}
    cfg = {"group_size": run.meta.get("group_size")} if run.meta.get("group_size") else None
    d = rl_doctor.diagnose(rl_doctor.run_from_records(recs, config=cfg, name=getattr(run, "name", "run")))
    return {"worst": d.worst.name, "checks": {f.detector: f.severity.name for f in d.findings}}


RANK = {"SKIPPED": 0, "OK": 1, "INFO": 2, "WARNING": 3, "CRITICAL": 4}


def raised(v: dict, *checks: str, severity: str = "WARNING") -> bool:
    """Whether any of rldoctor's `checks` reached `severity` or worse on this run."""
    return any(RANK.get(v["checks"].get(c, "SKIPPED"), 0) >= RANK[severity] for c in checks)


def expectation_met(expect: str, v: dict) -> bool:
    """The validity benchmark's expectations, read off rldoctor's whole-run verdict (see the docstring)."""
    if expect in ("decoupling", "decoupling_firing", "decoupling_resolved"):
        return raised(v, "reward_hacking")
    if expect == "signal_gap":
        return raised(v, "advantage_collapse")
    if expect == "no_signal_gap":
        return not raised(v, "advantage_collapse")
    if expect in ("no_critical", "no_critical_at_end"):
        return RANK[v["worst"]] < RANK["CRITICAL"]
    if expect == "no_decoupling_critical":
        return not raised(v, "reward_hacking", severity="CRITICAL")
    if expect == "no_warning_at_end":
        return RANK[v["worst"]] < RANK["WARNING"]
    if expect == "no_truth_gap":  # rldoctor has no per-step truth signal; its reward-hacking check is the nearest
        return not raised(v, "reward_hacking")
    raise KeyError(f"unknown expectation {expect!r}")


def flagged(v: dict) -> bool:
    return RANK[v["worst"]] >= RANK["WARNING"]


def generated_verdict(v: dict, expect: str) -> tuple[bool, bool]:
    """rldoctor's (right, false alarm) on a generated run (benchmarks/shapes.py's expectations), read as
    the real-run table reads it; whole-run, so nothing is "before the onset" for a decoupled shape."""
    if expect == "no_alert":
        return not flagged(v), flagged(v)
    if expect == "signal_gap_only":
        wrong = raised(v, "reward_hacking")
        return raised(v, "advantage_collapse") and not wrong, wrong
    if expect == "no_decoupling":
        return not raised(v, "reward_hacking"), raised(v, "reward_hacking")
    if expect == "stall_warning":
        return raised(v, "reward_hacking", "reward_composition"), False
    return raised(v, "reward_hacking"), False


__all__ = ["available", "records", "diagnose", "expectation_met", "flagged", "raised", "generated_verdict"]
