"""What a run spent and what it bought: the numbers that compare a remedy against plain GRPO.

A remedy changes what a step costs (dynamic sampling generates extra rounds; skipping dead prompts
generates fewer wasted groups; the SFT fallback spends wall time on a warm-start), so runs are compared
at equal budgets, never at equal steps: held-out accuracy at equal wall time (seconds since the run
was created, evaluations included) and at equal generated tokens (every completion the run generated
for training, refill rounds included; an SFT phase generates none). Pure functions of a Run.
"""

from __future__ import annotations

import polars as pl

from diag.summary import accuracy_series, once_per_step


def remedy(run) -> str:
    """The remedy a run used, as its config and run.json record it."""
    meta = run.meta
    if any(p.get("phase") == "sft" for p in meta.get("phases") or [] if isinstance(p, dict)):
        return "SFT fallback"
    if (meta.get("run_config") or {}).get("remedy", {}).get("on_signal_gap") == "sft":
        return "SFT fallback (not needed)"
    names = [n for k, n in (("dynamic_sampling", "dynamic sampling"), ("skip_dead", "skip dead prompts"))
             if meta.get(k)]
    return " + ".join(names) or ("plain GRPO" if meta.get("kind", "grpo") == "grpo" else str(meta.get("kind")))


def spend(run) -> pl.DataFrame:
    """Per held-out evaluation: step, accuracy, seconds since the run began, training tokens generated
    up to that step (cumulative over every generation round)."""
    acc = accuracy_series(run.evals)
    if acc.height == 0:
        return pl.DataFrame(schema={"step": pl.Int64, "accuracy": pl.Float64, "seconds": pl.Float64,
                                    "tokens": pl.Float64})
    set_name = str(run.evals.filter(pl.col("step") == acc["step"][0])["eval_set"][0])
    wall = (run.evals.filter((pl.col("eval_set") == set_name) & (pl.col("bucket") == "all"))
            .group_by("step").agg(pl.col("wall_time").min()))
    g = run.groups.filter(pl.col("mode") == "train")
    tokens = (g.group_by("step").agg((pl.col("len_mean").fill_null(0) * pl.col("G")).sum().alias("t")).sort("step")
              .with_columns(pl.col("t").cum_sum().alias("tokens")).select("step", "tokens"))
    out = acc.join(wall, on="step", how="left").sort("step")
    created = float(run.meta.get("created") or 0.0)
    out = out.with_columns((pl.col("wall_time") - created).alias("seconds")).rename({"value": "accuracy"})
    # tokens up to each evaluation: the last step at or before it (none before the first step)
    out = out.join_asof(tokens.cast({"step": pl.Int64}), on="step", strategy="backward").with_columns(
        pl.col("tokens").fill_null(0.0))
    return out.select("step", "accuracy", "seconds", "tokens")


def at(spent: pl.DataFrame, column: str, budget: float) -> float | None:
    """Held-out accuracy of the last evaluation made within `budget` (seconds or tokens)."""
    within = spent.filter(pl.col(column) <= budget + 1e-9)
    return float(within["accuracy"][-1]) if within.height else None


def summary(run) -> dict:
    """One run's totals: remedy, steps, effective batch actually trained on, completions and tokens
    generated, wall seconds, held-out accuracy first and last."""
    steps = once_per_step(run.steps.filter(pl.col("n_groups").is_not_null())) if run.steps.height else run.steps
    eff = None
    if steps.height:
        live = "diag/dynamic_live_share" if "diag/dynamic_live_share" in steps.columns else None
        trained = (pl.col(live).fill_null(pl.col("effective_batch") / pl.col("n_completions")) * pl.col("n_completions")
                   if live else pl.col("effective_batch").cast(pl.Float64))
        eff = steps.select(trained.mean()).item()
    g = run.groups.filter(pl.col("mode") == "train")
    sp = spend(run)
    gain = None
    if sp.height > 1 and sp["seconds"][-1] > 0:
        gain = float((sp["accuracy"][-1] - sp["accuracy"][0]) / sp["seconds"][-1])
    return {
        "run": run.name,
        "remedy": remedy(run),
        "grpo_steps": steps.height,
        "effective_batch": eff,  # completions per step in groups with signal, in the batch trained on
        "batch": float(steps["n_completions"].mean()) if steps.height else None,
        "generated_completions": int(g["G"].sum() or 0),
        "generated_tokens": float(sp["tokens"].max() or 0.0) if sp.height else 0.0,
        "seconds": float(sp["seconds"].max()) if sp.height else None,
        "accuracy_start": float(sp["accuracy"][0]) if sp.height else None,
        "accuracy_end": float(sp["accuracy"][-1]) if sp.height else None,
        "gain_per_second": gain,  # held-out accuracy gained per wall-second, first to last evaluation
    }


def compare(runs: list) -> list[dict]:
    """Each run's summary plus held-out accuracy at the budgets every run reached: the shortest run's
    wall time and the smallest token count (a run with no tokens, e.g. SFT alone, is left out of it)."""
    rows = [(summary(r), spend(r)) for r in runs]
    walls = [s["seconds"] for s, _ in rows if s["seconds"] is not None]
    toks = [s["generated_tokens"] for s, _ in rows if s["generated_tokens"]]
    wall_budget, token_budget = (min(walls) if walls else None), (min(toks) if toks else None)
    out = []
    for s, sp in rows:
        out.append({**s, "wall_budget": wall_budget, "token_budget": token_budget,
                    "accuracy_at_wall": at(sp, "seconds", wall_budget) if wall_budget is not None else None,
                    "accuracy_at_tokens": at(sp, "tokens", token_budget) if token_budget is not None else None})
    return out
