"""The read model: every number a page, a report, `check` or the live monitor shows about a run's
series is derived here, by pure functions over its frames (findings come from diag.detect, which reads
its series from here too).

One rule for each choice a reader could otherwise see made two ways:
- a step (or an evaluation) recorded more than once counts once, with its first record: what the live
  monitor judged when it arrived;
- "held-out accuracy" is the overall (`bucket == "all"`) greedy accuracy of the first eval set recorded,
  unless an eval set is named;
- the mixed (learning-signal) share of a step is what the all-fail, all-pass and tied shares leave.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from diag.store import Run

if TYPE_CHECKING:
    from diag.detect.align import Aligned

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


def once_per_step(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per step, the first recorded, in step order (a resumed or re-logged step counts once)."""
    if frame.height == 0 or "step" not in frame.columns:
        return frame
    if frame.height == 1 or bool((frame["step"].diff().drop_nulls() > 0).all()):
        return frame  # already one row per step in order: the usual case, checked in one pass
    return frame.unique("step", keep="first", maintain_order=True).sort("step")


def first_eval_set(evals: pl.DataFrame, metric: str = "accuracy") -> str | None:
    """The eval set that "held-out accuracy" means when none is named: the first one recorded."""
    e = evals.filter((pl.col("metric") == metric) & (pl.col("bucket") == "all")) if evals.height else evals
    return str(e["eval_set"][0]) if e.height else None


def accuracy_series(evals: pl.DataFrame, eval_set: str | None = None, metric: str = "accuracy") -> pl.DataFrame:
    """step, value (and n, the items evaluated) of the overall held-out metric, once per step."""
    empty = pl.DataFrame(schema={"step": pl.Int64, "value": pl.Float64, "n": pl.Int64})
    eval_set = eval_set or first_eval_set(evals, metric)
    if eval_set is None:
        return empty
    e = evals.filter((pl.col("metric") == metric) & (pl.col("bucket") == "all") & (pl.col("eval_set") == eval_set))
    return once_per_step(e.select("step", "value", pl.col("n").cast(pl.Int64, strict=False)))


def bucket_series(evals: pl.DataFrame, eval_set: str | None = None, metric: str = "accuracy") -> pl.DataFrame:
    """step, bucket, value of the held-out metric per difficulty bucket (the eval set as above)."""
    eval_set = eval_set or first_eval_set(evals, metric)
    if eval_set is None:
        return pl.DataFrame(schema={"step": pl.Int64, "bucket": pl.String, "value": pl.Float64})
    e = evals.filter((pl.col("metric") == metric) & (pl.col("bucket") != "all") & (pl.col("eval_set") == eval_set))
    return e.unique(["step", "bucket"], keep="first", maintain_order=True).sort(["bucket", "step"]) \
        .select("step", "bucket", "value")


SHARES = ("frac_all_fail", "frac_all_pass", "frac_tied")


def signal_shares(steps: pl.DataFrame) -> pl.DataFrame | None:
    """step, all_fail, all_pass, tied, mixed (and no_pass where recorded): the share of a step's prompt
    groups in each signal class. None when the run has no per-group classes (an imported log)."""
    s = once_per_step(steps)
    if s.height == 0 or not all(c in s.columns for c in SHARES) or s["frac_all_fail"].null_count() == s.height:
        return None
    out = s.select("step", *[pl.col(c).cast(pl.Float64).fill_null(0).alias(c.removeprefix("frac_")) for c in SHARES])
    out = out.with_columns((1 - pl.col("all_fail") - pl.col("all_pass") - pl.col("tied")).clip(0, 1).alias("mixed"))
    if "frac_no_pass" in s.columns and s["frac_no_pass"].null_count() < s.height:
        out = out.with_columns(s["frac_no_pass"].cast(pl.Float64).alias("no_pass"))
    return out


def best_checkpoints(a: "Aligned") -> dict | None:
    """The best evaluation by held-out accuracy and by training reward (None without accuracy)."""
    if len(a) == 0 or not np.isfinite(a.acc).any():
        return None
    ja = int(np.nanargmax(a.acc))
    jr = int(np.nanargmax(np.where(np.isfinite(a.reward), a.reward, -np.inf))) if np.isfinite(a.reward).any() else None
    return {"by_accuracy": {"step": int(a.steps[ja]), "accuracy": _f(a.acc[ja])},
            "by_reward": None if jr is None else {"step": int(a.steps[jr]), "reward": _f(a.reward[jr]),
                                                  "accuracy": _f(a.acc[jr])}}


def training_samples(run: Run) -> pl.DataFrame:
    """step -> cumulative training samples seen (completions for GRPO, examples for SFT)."""
    steps = once_per_step(run.steps)
    if steps.height and "n_completions" in steps.columns and steps["n_completions"].null_count() < steps.height:
        return steps.select("step", pl.col("n_completions").fill_null(0).cum_sum().alias("samples"))
    cfg = run.meta.get("config")
    bs = cfg.get("sft", {}).get("batch_size") if isinstance(cfg, dict) else None
    st = accuracy_series(run.evals)["step"].to_list()
    return pl.DataFrame({"step": st, "samples": [s * (bs or 1) for s in st]},
                        schema={"step": pl.Int64, "samples": pl.Int64})


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
    steps = once_per_step(run.steps)
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
    out["n_invalid"] = int(steps["n_invalid"].sum() or 0) if "n_invalid" in steps.columns and steps.height else 0
    out["n_alerts"] = run.alerts.height
    out["reproducibility"] = meta.get("reproducibility")
    return out
