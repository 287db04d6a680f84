"""Headline numbers of a run: pure functions over its frames (used by the CLI, demo and reports)."""

from __future__ import annotations

import math

import polars as pl

from diag.store import Run

SMOOTH = 10  # steps per window for reward start / peak / end: single steps are too noisy


def _f(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def reward_points(steps: pl.DataFrame, window: int = SMOOTH) -> dict:
    """Mean training reward over the first and last `window` steps, and the peak rolling mean."""
    if steps.height == 0 or "reward_mean" not in steps.columns:
        return {"reward_start": None, "reward_peak": None, "reward_peak_step": None, "reward_end": None}
    s = steps.sort("step").filter(pl.col("reward_mean").is_not_null())
    if s.height == 0:
        return {"reward_start": None, "reward_peak": None, "reward_peak_step": None, "reward_end": None}
    w = max(1, min(window, s.height))
    roll = s.with_columns(pl.col("reward_mean").rolling_mean(w).alias("roll")).drop_nulls("roll")
    peak = roll.sort("roll", descending=True).row(0, named=True)
    return {
        "reward_start": _f(s.head(w)["reward_mean"].mean()),
        "reward_peak": _f(peak["roll"]),
        "reward_peak_step": int(peak["step"]),
        "reward_end": _f(s.tail(w)["reward_mean"].mean()),
    }


def accuracy_series(evals: pl.DataFrame, eval_set: str | None = None, metric: str = "accuracy") -> pl.DataFrame:
    """step, value of the overall held-out metric (first eval set unless named)."""
    if evals.height == 0:
        return pl.DataFrame(schema={"step": pl.Int64, "value": pl.Float64})
    e = evals.filter((pl.col("metric") == metric) & (pl.col("bucket") == "all"))
    if eval_set is None and e.height:
        eval_set = e["eval_set"][0]
    return e.filter(pl.col("eval_set") == eval_set).sort("step").select("step", "value")


def accuracy_points(evals: pl.DataFrame) -> dict:
    acc = accuracy_series(evals)
    if acc.height == 0:
        return {"accuracy_start": None, "accuracy_peak": None, "accuracy_peak_step": None,
                "accuracy_end": None, "accuracy_last": None, "n_evals": 0}
    peak = acc.sort(["value", "step"], descending=[True, False]).row(0)
    return {
        "accuracy_start": _f(acc["value"][0]),
        "accuracy_peak": _f(peak[1]),
        "accuracy_peak_step": int(peak[0]),
        "accuracy_end": _f(acc["value"][-1]),
        "accuracy_last": _f(acc["value"][-1]),
        "n_evals": acc.height,
    }


def summarize(run: Run) -> dict:
    steps = run.steps
    meta = run.meta
    out = {
        "name": run.name,
        "status": run.status,
        "model": meta.get("model"),
        "task": meta.get("task"),
        "kind": meta.get("kind"),
        "framework": meta.get("framework"),
        "reward_funcs": run.reward_funcs,
        "steps": int(steps["step"].max()) if steps.height else 0,
        **reward_points(steps),
        **accuracy_points(run.evals),
    }
    out["reward_last"] = _f(steps["reward_mean"].drop_nulls()[-1]) if "reward_mean" in steps.columns and \
        steps["reward_mean"].drop_nulls().len() else None
    for key in ("frac_all_fail", "frac_all_pass", "frac_zero_signal", "effective_batch", "frac_clipped"):
        out[f"{key}_mean"] = _f(steps[key].mean()) if key in steps.columns and steps.height else None
    out["n_alerts"] = run.alerts.height
    out["reproducibility"] = meta.get("reproducibility")
    return out
