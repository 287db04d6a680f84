"""Per-prompt history: each prompt's groups over the run, and what skipping dead prompts would save.

A prompt is *dead* at a visit when its group had no learning signal (all-fail, all-pass or tied: the
advantages are zero). GRESO's observation is that a prompt dead at its last visits is very likely dead
again, so its generation can be skipped; `skip_rule` measures that rule on the run itself, after the
fact: at each visit with k earlier visits, all dead, the rule would have skipped it, and we know whether
that visit was in fact dead (precision) or a lost learning signal. The history is derived from the
`groups` table (which already holds prompt hash, step, signal, n_pass and G): no second copy is stored.
"""

from __future__ import annotations

import polars as pl

from diag.schema import ALL_FAIL, ALL_PASS, TIED

DEAD = (ALL_FAIL, ALL_PASS, TIED)


def history(groups: pl.DataFrame) -> pl.DataFrame:
    """One row per (prompt, training visit): prompt_hash, step, visit (1-based), signal, n_pass, G,
    dead. A prompt seen twice in one step counts as two visits, in group order."""
    cols = ["prompt_hash", "prompt", "step", "group", "signal", "n_pass", "G"]
    if groups.height == 0 or "prompt_hash" not in groups.columns:
        return pl.DataFrame(schema={"prompt_hash": pl.String, "prompt": pl.String, "step": pl.Int64,
                                    "visit": pl.Int64, "signal": pl.String, "n_pass": pl.Int64, "G": pl.Int64,
                                    "dead": pl.Boolean})
    g = groups.filter((pl.col("mode") == "train") & pl.col("prompt_hash").is_not_null()).select(cols)
    return (g.sort("step", "group")
            .with_columns(pl.int_range(1, pl.len() + 1).over("prompt_hash").cast(pl.Int64).alias("visit"),
                          pl.col("signal").is_in(DEAD).alias("dead"))
            .drop("group"))


def table(hist: pl.DataFrame) -> pl.DataFrame:
    """Per prompt: visits, first / last step, last signal and pass rate, dead visits, the dead streak
    at its last visit, and whether it was revived (dead at a visit, learning signal at a later one)."""
    if hist.height == 0:
        return pl.DataFrame(schema={"prompt_hash": pl.String, "prompt": pl.String, "visits": pl.UInt32,
                                    "first_step": pl.Int64, "last_step": pl.Int64, "last_signal": pl.String,
                                    "last_pass_rate": pl.Float64, "dead_visits": pl.UInt32,
                                    "dead_streak": pl.Int64, "revived": pl.Boolean})
    # the streak at the last visit: visits after the last live one
    last_live = pl.when(~pl.col("dead")).then(pl.col("visit")).otherwise(0).max()
    first_dead = pl.when(pl.col("dead")).then(pl.col("visit")).otherwise(None).min()
    return (hist.sort("prompt_hash", "visit").group_by("prompt_hash", maintain_order=True).agg(
        pl.col("prompt").first(),
        pl.len().alias("visits"),
        pl.col("step").min().alias("first_step"),
        pl.col("step").max().alias("last_step"),
        pl.col("signal").last().alias("last_signal"),
        (pl.col("n_pass").last() / pl.col("G").last()).alias("last_pass_rate"),
        pl.col("dead").sum().alias("dead_visits"),
        (pl.col("visit").max() - last_live).alias("dead_streak"),
        (first_dead.is_not_null() & (last_live > first_dead.fill_null(0))).alias("revived"),
    ).sort(["dead_streak", "visits"], descending=True))


def skip_rule(hist: pl.DataFrame, k: int = 2) -> dict:
    """The GRESO-style rule "skip a prompt whose last k visits were all dead", judged on this run:
    visits it would have skipped, how many of those were dead again (precision, beside the dead share of every
    visit it could act on), the learning signals it would have lost, and the share of generated completions it
    would have saved."""
    if k < 1:
        raise ValueError("k must be >= 1 (earlier dead visits before a prompt is skipped)")
    if hist.height == 0:
        return {"k": k, "visits": 0, "judged": 0, "skipped": 0, "precision": None, "dead_share_judged": None,
                "lost_signal": 0, "completions_saved_share": None, "enough_data": False}
    h = hist.sort("prompt_hash", "visit").with_columns(
        pl.col("dead").cast(pl.Int32).rolling_sum(k).shift(1).over("prompt_hash").alias("_prev_dead"))
    judged = h.filter(pl.col("visit") > k)
    skipped = judged.filter(pl.col("_prev_dead") == k)
    n_skip = skipped.height
    total_completions = float(h["G"].sum() or 0)
    return {
        "k": k,
        "visits": h.height,
        "judged": judged.height,  # visits with k earlier ones: the only ones the rule can act on
        "skipped": n_skip,
        "precision": None if n_skip == 0 else float(skipped["dead"].mean()),
        # the base rate the precision is read against: a rule that knows nothing of the prompt scores this much
        "dead_share_judged": float(judged["dead"].mean()) if judged.height else None,
        "lost_signal": int((~skipped["dead"]).sum()) if n_skip else 0,
        "completions_saved_share": None if not total_completions else float(skipped["G"].sum() or 0) / total_completions,
        "enough_data": judged.height > 0,
    }


def summary(hist: pl.DataFrame, k: int = 2, t: pl.DataFrame | None = None) -> dict:
    """The headline numbers of the prompts view (`t`: `table(hist)` when the caller has it already)."""
    t = table(hist) if t is None else t
    n = t.height
    return {
        "prompts": n,
        "dead_now_share": None if not n else float((t["dead_streak"] >= 1).mean()),
        f"dead_{k}_in_a_row_share": None if not n else float((t["dead_streak"] >= k).mean()),
        "revived": int(t["revived"].sum()) if n else 0,
        "repeat_visits": int((t["visits"] > 1).sum()) if n else 0,
        "skip": skip_rule(hist, k),
    }


def skipped_live(scalars: pl.DataFrame) -> dict | None:
    """What the skip-dead-prompts remedy did during the run (its diag/skip_* scalars summed), or None
    when the run did not use it. Skipped visits were never generated, so they are not in the history."""
    s = scalars.filter(pl.col("key").str.starts_with("diag/skip_")) if scalars.height else scalars
    if s.height == 0:
        return None
    total = {k: float(v) for k, v in s.filter(pl.col("key") != "diag/skip_known_dead")
             .group_by("key").agg(pl.col("value").sum()).iter_rows()}
    known = s.filter(pl.col("key") == "diag/skip_known_dead")
    return {"skipped": int(total.get("diag/skip_skipped", 0)), "unreplaced": int(total.get("diag/skip_unreplaced", 0)),
            "completions_saved": int(total.get("diag/skip_completions_saved", 0)),
            "known_dead_at_end": int(known.sort("step")["value"][-1]) if known.height else 0}
