"""What a firing problem has cost since it began: steps, wall time, tokens (and GPU-hours where the GPU
count is known), read from the run itself. "The run has spent 9.5 h and 1.2 B tokens since the reward
stopped tracking the task" is the number that decides whether to stop a run.

Each figure is None when the log cannot say: seconds from the steps' wall times (grpo-diag's own
recorder, imported timestamps) or else the trainer's per-step timing scalars; tokens from completion
lengths x completions per step (completion tokens; prompts are not counted) or else the trainer's own
running token count (TRL's `num_tokens`, prompts included: said so).
"""

from __future__ import annotations

import math

import polars as pl

STEP_TIMERS = ("timing_s/step", "perf/time_per_step", "train/step_time", "step_time")  # seconds per step
TOKEN_COUNTERS = ("num_tokens", "train/num_tokens")  # running totals


def _series(scalars: pl.DataFrame, keys: tuple[str, ...]) -> pl.DataFrame | None:
    if not scalars.height:
        return None
    for k in keys:
        s = scalars.filter(pl.col("key") == k)
        if s.height:
            return s.group_by("step").agg(pl.col("value").last()).sort("step")
    return None


def _seconds(steps: pl.DataFrame, scalars: pl.DataFrame, onset: int, until: int) -> float | None:
    if "wall_time" in steps.columns:
        t = steps.select("step", "wall_time").drop_nulls().filter(pl.col("wall_time").is_finite())
        before, after = t.filter(pl.col("step") <= onset), t.filter(pl.col("step") <= until)
        if before.height and after.height and after["step"][-1] > before["step"][-1]:
            return float(after["wall_time"][-1] - before["wall_time"][-1])
    timer = _series(scalars, STEP_TIMERS)
    if timer is not None:
        span = timer.filter((pl.col("step") > onset) & (pl.col("step") <= until))
        if span.height:
            # logged every few steps: each logged value stands for the steps since the one before
            per = float(span["value"].mean())
            return per * (until - onset) if math.isfinite(per) else None
    return None


def _tokens(steps: pl.DataFrame, scalars: pl.DataFrame, onset: int, until: int) -> tuple[float | None, str | None]:
    span = steps.filter((pl.col("step") > onset) & (pl.col("step") <= until))
    if span.height and {"len_mean", "n_completions"} <= set(span.columns):
        t = span.select((pl.col("len_mean") * pl.col("n_completions")).alias("t"))["t"].drop_nulls()
        if t.len() and t.len() >= span.height // 2:
            logged = float(t.sum()) * span.height / t.len()  # steps missing one of the two: at the mean
            per_step = logged / span.height
            return per_step * (until - onset), "completion tokens"
    counter = _series(scalars, TOKEN_COUNTERS)
    if counter is not None:
        before = counter.filter(pl.col("step") <= onset)
        after = counter.filter(pl.col("step") <= until)
        if before.height and after.height and after["value"][-1] > before["value"][-1]:
            return float(after["value"][-1] - before["value"][-1]), "tokens, prompts included (the trainer's count)"
    return None, None


def gpus_of(meta: dict) -> int | None:
    """The GPU count a run's metadata states (verl's trainer.n_gpus_per_node x nnodes), or None."""
    cfg = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    flat = {**cfg, **(cfg.get("trainer") if isinstance(cfg.get("trainer"), dict) else {})}
    per = flat.get("n_gpus_per_node") or flat.get("trainer.n_gpus_per_node")
    nodes = flat.get("nnodes") or flat.get("trainer.nnodes") or 1
    try:
        return int(per) * int(nodes) if per else (int(meta["gpus"]) if meta.get("gpus") else None)
    except (TypeError, ValueError):
        return None


def cost_since(steps: pl.DataFrame, scalars: pl.DataFrame, onset: int, until: int,
               gpus: int | None = None) -> dict:
    """{steps, seconds, tokens, tokens_are, gpus, gpu_hours} spent from step `onset` to `until`."""
    seconds = _seconds(steps, scalars, onset, until)
    tokens, what = _tokens(steps, scalars, onset, until)
    return {"steps": int(until - onset), "seconds": seconds, "tokens": tokens, "tokens_are": what, "gpus": gpus,
            "gpu_hours": seconds * gpus / 3600 if seconds is not None and gpus else None}


def _duration(s: float) -> str:
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def _count(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f}"


def words(cost: dict) -> str:
    """"The run has spent 120 steps, 9.5 h (38.0 GPU-hours) and 1.2 B completion tokens since" ..."""
    parts = [f"{cost['steps']} steps"]
    if cost.get("seconds") is not None:
        gpu = f" ({cost['gpu_hours']:.1f} GPU-hours)" if cost.get("gpu_hours") is not None else ""
        parts.append(_duration(cost["seconds"]) + gpu)
    if cost.get("tokens") is not None:
        parts.append(f"{_count(cost['tokens'])} {cost['tokens_are']}")
    return ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]

