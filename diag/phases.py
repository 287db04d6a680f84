"""A run in phases (GRPO, an SFT warm-start, GRPO again: the SFT fallback) on one step axis.

run.json's `phases` lists them in order: {"phase": "grpo" | "sft", "start", "end", "reason", ...}; the
SFT phase carries `probe_after`, the probe of the model it produced. The phase of a row is derived from
its step here, the one place that does so (`label`: a frame's `phase` column; the charts' phase marks,
the run header).
"""

from __future__ import annotations

import math

import polars as pl

from diag.summary import once_per_step

LABELS = {"grpo": "GRPO", "sft": "SFT warm-start"}


def of(meta: dict) -> list[dict]:
    """The run's phases, well-formed ones only (an imported or hand-edited run.json may hold anything)."""
    out = []
    for p in meta.get("phases") or []:
        if not isinstance(p, dict) or not isinstance(p.get("start"), int) or not isinstance(p.get("phase"), str):
            continue
        end = p.get("end")
        out.append({**p, "end": end if isinstance(end, int) else None})
    return out


def label(frame: pl.DataFrame, phases: list[dict], col: str = "step") -> pl.DataFrame:
    """`frame` with a `phase` column: the phase whose steps hold the row's step (null outside any)."""
    if not phases or col not in frame.columns:
        return frame
    expr = pl.lit(None, dtype=pl.String)
    for i, p in reversed(list(enumerate(phases))):  # the first matching phase wins
        upper = p["end"] if p["end"] is not None else math.inf
        lower = -math.inf if i == 0 else p["start"]  # step 0 (the evaluation before training) is the first phase's
        expr = pl.when((pl.col(col) >= lower) & (pl.col(col) <= upper)).then(pl.lit(p["phase"])).otherwise(expr)
    return frame.with_columns(expr.alias("phase"))


def all_fail_by_phase(steps: pl.DataFrame, phases: list[dict]) -> list[dict]:
    """Per GRPO phase: its steps and the mean all-fail share of its groups (the model's own first round
    of each step), so a reader sees whether the warm-start gave GRPO its signal back."""
    if not phases or "frac_all_fail" not in steps.columns:
        return []
    s = label(once_per_step(steps).filter(pl.col("frac_all_fail").is_not_null()), phases)
    out = []
    for i, p in enumerate(phases):
        if p["phase"] != "grpo":
            continue
        upper = p["end"] if p["end"] is not None else math.inf
        mine = s.filter((pl.col("step") >= p["start"]) & (pl.col("step") <= upper))
        out.append({"index": i, "start": p["start"], "end": p["end"], "steps": mine.height,
                    "all_fail": float(mine["frac_all_fail"].mean()) if mine.height else None})
    return out
