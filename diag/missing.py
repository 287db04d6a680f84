"""What a run's log lacks, per chart: the sentence a page shows instead of empty axes.

An imported log carries what its trainer chose to print: TRL's and verl's console lines are batch means,
so the per-group charts have nothing to draw. An empty chart says nothing, and says it as if the run had
no steps; the pages show, in its place, what is missing, which source would supply it, and the command.
Pure: a run's tables and meta in, {chart: sentence} out (a chart absent from the answer has its data).
"""

from __future__ import annotations

import polars as pl

from diag.summary import bucket_series, first_eval_set, once_per_step, signal_shares

# the charts of a run page (and of the HTML report), in the order drawn; a two-panel chart's panels
# are named `<chart>.top` / `<chart>.bottom` when only one of them lacks its series
CHARTS = ("reward_acc", "signal", "advantage", "heatmap", "length", "buckets")

_GROUPS = {  # where per-group rewards come from, by the format a run was imported from
    "verl-console": "verl's console log has batch means only: import the rollout dumps "
                    "(trainer.rollout_data_dir) for group-level signal: grpo-diag import ROLLOUT_DIR "
                    "--validation-dir VALIDATION_DIR",
    "verl-file": "verl's file logger has batch means only: import the rollout dumps (trainer.rollout_data_dir) "
                 "for group-level signal: grpo-diag import ROLLOUT_DIR --metrics metrics.jsonl",
    "trainer-state": "a trainer_state.json has batch means only: TRL's completion tables (log_completions=True) "
                     "give per-group rewards (grpo-diag import completions/ --format trl-completions), or train "
                     "with DiagGRPOTrainer",
    "trl-console": "TRL's console log has batch means only: TRL's completion tables (log_completions=True) give "
                   "per-group rewards (grpo-diag import completions/ --format trl-completions), or train with "
                   "DiagGRPOTrainer",
    "tinker": "tinker's metrics.jsonl has batch means only: log each group's rewards with "
              "diag.Recorder(...).log_batch(step, rewards) beside the loop",
    "generic": "this log has batch means only: log each group's rewards with diag.Recorder(...).log_batch(step, "
               "rewards) beside the loop",
}
_KEYS = {  # the metric names the importers read for each series, to say what to look for
    "zero_signal": "a zero-variance share (TRL: frac_reward_zero_std; verl: a zero-std share) or per-group rewards",
    "advantage": "per-group rewards (advantage variance and effective batch are computed from them)",
    "length": "a completion length (TRL: completions/mean_length; verl: response_length/mean) or clipped share "
              "(TRL: completions/clipped_ratio; verl: response_length/clip_ratio)",
}


def _fmt(meta: dict) -> str:
    return str(meta.get("format") or ("generic" if meta.get("source") == "import" else ""))


def _source(meta: dict) -> str:
    """How to get per-group data for a run of this origin."""
    return _GROUPS.get(_fmt(meta), "record the run with DiagGRPOTrainer or diag.Recorder for per-group signal")


def _has(s: pl.DataFrame, col: str) -> bool:
    return s.height > 0 and col in s.columns and s[col].null_count() < s.height


def _where(meta: dict) -> str:
    f = _fmt(meta)
    return f"this {f} log" if f else "this run"


def notes(steps: pl.DataFrame, groups: pl.DataFrame, evals: pl.DataFrame, meta: dict) -> dict[str, str]:
    """{chart or panel: why it is not drawn}, for every chart (or panel) with no series in this run."""
    s = once_per_step(steps)
    out: dict[str, str] = {}
    where, source = _where(meta), _source(meta)
    if s.height == 0 and evals.height == 0:
        return {c: "No steps recorded yet." for c in CHARTS}
    if not _has(s, "reward_mean"):
        out["reward_acc.top"] = f"No training reward in {where}: map it with --map reward=KEY when importing."
    if first_eval_set(evals) is None:
        out["reward_acc.bottom"] = (f"No held-out accuracy in {where}: pass --accuracy-key KEY if it is logged under "
                                    "another name, or evaluate checkpoints (HeldOut sets in DiagConfig; verl: "
                                    "trainer.test_freq with trainer.validation_data_dir).")
    if signal_shares(steps) is None and not _has(s, "frac_zero_signal"):
        out["signal"] = f"No zero-signal shares: {where} has no {_KEYS['zero_signal']}. {source}."
    adv, eff = _has(s, "adv_var_mean"), _has(s, "effective_batch")
    if not adv and not eff:
        out["advantage"] = f"No advantage variance or effective batch: {where} has no {_KEYS['advantage']}. {source}."
    elif not adv or not eff:
        out["advantage.top" if not adv else "advantage.bottom"] = f"Not in {where}: {source}."
    if groups.height == 0 or "mode" not in groups.columns or groups.filter(pl.col("mode") == "train").height == 0:
        out["heatmap"] = f"No per-group rewards in {where}. {source}."
    ln, clip = _has(s, "len_mean"), _has(s, "frac_clipped")
    if not ln and not clip:
        out["length"] = f"No completion lengths: {where} has no {_KEYS['length']}."
    elif not ln or not clip:
        out["length.top" if not ln else "length.bottom"] = (
            f"Not in {where}: " + ("no mean completion length." if not ln else "no share cut at the length cap."))
    if bucket_series(evals).height == 0:
        out["buckets"] = ("No accuracy by difficulty: " + (
            "the held-out items carry no difficulty bucket (HeldOut rows with a 'bucket' field, or "
            "HeldOut(bucket_key=...), give one)." if first_eval_set(evals) is not None else "there is no held-out accuracy at all."))
    return out


def for_chart(all_notes: dict[str, str], chart: str) -> tuple[str | None, dict[int, str]]:
    """(the note replacing the whole chart, {panel row: note} for a panel alone) of one chart."""
    panels = {row: all_notes[f"{chart}.{name}"] for row, name in ((1, "top"), (2, "bottom"))
              if f"{chart}.{name}" in all_notes}
    return all_notes.get(chart), panels
