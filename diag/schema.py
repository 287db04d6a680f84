"""Every record type grpo-diag writes, in one place.

A run directory holds `run.json` plus one folder of append-only Parquet segments per table below.
Column order and dtypes are fixed here; writers cast to them and readers check them, so a file
written by another version fails with a message that names the file and the column.
"""

from __future__ import annotations

import polars as pl

# Bump when a column changes meaning or dtype; readers refuse newer major versions.
SCHEMA_VERSION = 2

# Group signal classes. Decided per group from raw rewards with an epsilon (never from a scaled std).
MIXED, ALL_FAIL, ALL_PASS, TIED = "mixed", "all_fail", "all_pass", "tied"
SIGNALS = (MIXED, ALL_FAIL, ALL_PASS, TIED)

TRAIN, EVAL = "train", "eval"

F64, I64, STR, BOOL = pl.Float64, pl.Int64, pl.String, pl.Boolean

# One row per prompt group per generation batch.
GROUPS = {
    "step": I64,  # optimizer step the batch trains (1-based, as TRL logs it)
    "gen_call": I64,  # generation call counter; differs from step when a batch spans several steps
    "mode": STR,  # train | eval
    "group": I64,  # group index within the generation batch
    "prompt_hash": STR,
    "prompt": STR,  # truncated to PROMPT_CHARS
    "G": I64,  # completions in the group
    "n_valid": I64,  # completions whose total reward is finite
    "reward_mean": F64,  # total (weighted) reward, population statistics over valid completions
    "reward_std": F64,
    "reward_min": F64,
    "reward_max": F64,
    "func_mean": pl.List(F64),  # per reward function, in run.json's reward_funcs order
    "func_std": pl.List(F64),
    "func_tied": pl.List(BOOL),  # that function alone gives this group no signal
    "n_pass": I64,  # completions passing the task verifier; null when no verifier is known
    # completions the truth function (DiagConfig(truth=...): the task's strict check on the training
    # completion and its dataset row) calls correct, whatever the reward paid; null when none is given
    "n_true": I64,
    "signal": STR,  # one of SIGNALS
    "adv_mean": F64,
    "adv_var": F64,
    "adv_abs_mean": F64,
    "len_mean": F64,
    "n_clipped": I64,  # completions that hit the length cap without EOS; null when unknown
}

# One row per training generation batch: the group statistics aggregated.
STEPS = {
    "step": I64,
    "gen_call": I64,
    "n_groups": I64,
    "n_completions": I64,
    "reward_mean": F64,
    "reward_std": F64,  # whole-batch std, the number trackers show
    "func_mean": pl.List(F64),
    "frac_zero_signal": F64,  # all_fail + all_pass + tied
    "frac_all_fail": F64,
    "frac_all_pass": F64,
    "frac_tied": F64,
    # groups in which no completion passes the verifier, whatever the other rewards do: with a format
    # reward such a group can be "mixed" (it trains the format) and still carry no task signal
    "frac_no_pass": F64,
    "effective_batch": I64,  # completions in mixed groups: the ones that carry gradient
    "adv_var_mean": F64,
    "adv_abs_mean": F64,
    "len_mean": F64,
    "frac_clipped": F64,
    "n_invalid": I64,  # completions with NaN / inf / None total reward
    "wall_time": F64,
    # The reward-truth gap (null without a truth function): the share of judged training completions
    # that are true, the mean total reward paid to true and to untrue ones, per function over the
    # untrue ones, and the share of the (positive) reward paid to untrue completions.
    "truth_rate": F64,
    "n_truth": I64,  # completions the truth function judged
    "reward_true": F64,
    "reward_untrue": F64,
    "func_untrue": pl.List(F64),
    "untrue_share": F64,
}

# The trainer's own scalars (loss, kl, entropy, ...), long format so any key fits.
SCALARS = {"step": I64, "mode": STR, "key": STR, "value": F64}

EVALS = {
    "step": I64,
    "eval_set": STR,
    "metric": STR,  # accuracy (greedy) | mean@k | pass@k
    "bucket": STR,  # "all" or a difficulty bucket
    "value": F64,
    "n": I64,
    "wall_time": F64,
}

# Per-item correctness so two evaluations can be compared item by item (paired tests).
EVAL_ITEMS = {
    "step": I64,
    "eval_set": STR,
    "item": I64,
    "bucket": STR,
    "correct": BOOL,
    "completion": STR,
}

COMPLETIONS = {
    "step": I64,
    "gen_call": I64,
    "mode": STR,
    "group": I64,
    "index": I64,  # position within the group
    "prompt": STR,
    "completion": STR,  # untrusted model output: escape wherever shown
    "rewards": pl.List(F64),  # per reward function, run.json order
    "reward": F64,
    "advantage": F64,
    "length": I64,
    "passed": BOOL,
    "signal": STR,
    "truth": BOOL,  # the truth function's verdict; null without one
}

ALERTS = {
    "id": STR,  # kind@onset: later rows for the same id (delivery results) supersede earlier ones
    "step": I64,
    "kind": STR,  # signal_gap | saturated | decoupling | ...
    "severity": STR,  # info | warning | critical
    "message": STR,
    "onset": I64,
    "window_start": I64,
    "window_end": I64,
    "evidence": STR,  # JSON object of the numbers behind the message
    "delivered": STR,  # JSON object sink -> status
    "wall_time": F64,
    "state": STR,  # firing | resolved (schema 2): the newest row of an id gives its current state
    "resolved_step": I64,
}

# Columns added after schema 1, with the value an older file means: read, never refused.
ADDED = {"alerts": {"state": ("firing", STR), "resolved_step": (None, I64)},
         "steps": {"frac_no_pass": (None, F64), "truth_rate": (None, F64), "n_truth": (None, I64),
                   "reward_true": (None, F64), "reward_untrue": (None, F64), "func_untrue": (None, pl.List(F64)),
                   "untrue_share": (None, F64)},
         "groups": {"n_true": (None, I64)},
         "completions": {"truth": (None, BOOL)}}

TABLES: dict[str, dict[str, pl.DataType]] = {
    "groups": GROUPS,
    "steps": STEPS,
    "scalars": SCALARS,
    "evals": EVALS,
    "eval_items": EVAL_ITEMS,
    "completions": COMPLETIONS,
    "alerts": ALERTS,
}

PROMPT_CHARS = 2000
COMPLETION_CHARS = 4000

RUN_STATUSES = ("running", "finished", "crashed", "stale")  # stale: a watched log went quiet without an end marker


def empty(table: str) -> pl.DataFrame:
    return pl.DataFrame(schema=TABLES[table])


def conform(table: str, rows: list[dict] | pl.DataFrame) -> pl.DataFrame:
    """Rows -> a frame with exactly the table's columns and dtypes (missing columns are null)."""
    schema = TABLES[table]
    if isinstance(rows, pl.DataFrame):
        df = rows
    else:
        unknown = {k for r in rows for k in r} - schema.keys()
        if unknown:
            raise KeyError(f"table {table!r} has no column(s) {sorted(unknown)}; known: {list(schema)}")
        df = pl.DataFrame(rows, schema=schema, strict=False) if rows else empty(table)
    missing = [c for c in schema if c not in df.columns]
    if missing:
        df = df.with_columns([pl.lit(None, dtype=schema[c]).alias(c) for c in missing])
    return df.select([pl.col(c).cast(schema[c], strict=False) for c in schema])


class SchemaError(ValueError):
    """A file does not match the schema: the message names the file, the column and the fix."""


def check_frame(table: str, df: pl.DataFrame, source: str, cols: list[str] | None = None) -> pl.DataFrame:
    """`df` with the table's columns (or only `cols`) in their dtypes; a column added by a later schema
    version gets its default; any other missing column is an error naming the file and the fix."""
    schema = TABLES[table] if cols is None else {c: TABLES[table][c] for c in cols}
    added = {c: v for c, v in ADDED.get(table, {}).items() if c not in df.columns and c in schema}
    if added:
        df = df.with_columns([pl.lit(v, dtype=t).alias(c) for c, (v, t) in added.items()])
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise SchemaError(
            f"{source}: table {table!r} lacks column(s) {missing}. The file was written by another "
            f"schema version; re-import the run or upgrade grpo-diag (schema {SCHEMA_VERSION})."
        )
    try:
        return df.select([pl.col(c).cast(schema[c]) for c in schema])
    except pl.exceptions.PolarsError as e:
        raise SchemaError(f"{source}: table {table!r} has a column of the wrong type ({e}).") from e
