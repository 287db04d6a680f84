"""Run every detector on a run's frames: the offline `grpo-diag check`.

Every detector either gives findings or says, as a `no_data` finding, what it lacked and how to
supply it: a verdict or an explicit "not enough data", never silence and never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl

from diag import schema
from diag.detect.align import align
from diag.detect.base import Finding, no_data
from diag.detect.causes import CauseParams, cite, detect_causes
from diag.detect.checkpoint import best_checkpoint
from diag.detect.cost import cost_since, gpus_of, words
from diag.detect.decoupling import DecouplingParams, detect_decoupling
from diag.detect.hindsight import hindsight
from diag.detect.replay import DecouplingReplay
from diag.detect.signal_gap import SignalGapParams, detect_signal_gap
from diag.detect.transfer import TransferParams, detect_transfer
from diag.detect.truth_gap import TruthGapParams, cite_truth, detect_truth_gap
from diag.detect.verdict import end_verdict
from diag.sizes import EvalSize, size_of
from diag.summary import best_checkpoints, once_per_step


@dataclass(frozen=True)
class DetectParams:
    signal_gap: SignalGapParams = field(default_factory=SignalGapParams)
    decoupling: DecouplingParams = field(default_factory=DecouplingParams)
    transfer: TransferParams = field(default_factory=TransferParams)
    causes: CauseParams = field(default_factory=CauseParams)
    truth_gap: TruthGapParams = field(default_factory=TruthGapParams)


def detect_all(run, params: DetectParams | None = None, eval_size: EvalSize | None = None,
               reward_range_given: tuple[float, float] | None = None, eval_set: str | None = None,
               state: dict | None = None) -> list[Finding]:
    """Findings for a diag.Run (or anything with .steps/.groups/.evals/.eval_items/.meta).

    `eval_size` fills the item count of evaluations that lack one (imported logs); `reward_range_given`
    overrides the run's declared reward range; `eval_set` as for check_run. `state`: a dict the caller
    keeps between calls on a growing run (a dashboard's cache): the decoupling scan resumes from the
    evaluations it judged before instead of replaying them (the same findings, in a fraction of the time)."""
    return with_cost(run, _detect(run, params, eval_size, reward_range_given, eval_set, state)[0])


def check_run(run, params: DetectParams | None = None, eval_size: EvalSize | None = None,
              reward_range_given: tuple[float, float] | None = None, fail_on: str = "critical",
              eval_set: str | None = None, gpus: int | None = None) -> tuple[list[Finding], dict]:
    """`grpo-diag check` for one run: its findings and the end-of-run verdict (diag.detect.verdict).
    `eval_set` names the held-out set the decoupling verdict judges (default: the first recorded, the set
    the run trains for); the others corroborate it."""
    findings, a = _detect(run, params, eval_size, reward_range_given, eval_set)
    findings = with_cost(run, findings, gpus)
    return findings, end_verdict(findings, best_checkpoints(a) if len(a) else None, fail_on)


def with_cost(run, findings: list[Finding], gpus: int | None = None) -> list[Finding]:
    """Each firing alert with what the run has spent since its onset (diag.detect.cost), in its `cost` and
    its message. `gpus`: the GPU count (else the run's config, where it says)."""
    steps = once_per_step(run.steps) if run.steps.height else run.steps
    if not steps.height:
        return findings
    last = int(steps["step"].max())
    meta = getattr(run, "meta", None) or {}
    gpus = gpus or gpus_of(meta)
    scalars = getattr(run, "scalars", None)  # a frame-only run (a benchmark's) may have none
    scalars = schema.empty("scalars") if scalars is None else scalars
    out = []
    for f in findings:
        if f.firing and f.onset is not None and last > f.onset:
            c = cost_since(steps, scalars, int(f.onset), last, gpus)
            f = replace(f.with_note(f" Since its onset (step {f.onset}) the run has spent {words(c)}."), cost=c)
        out.append(f)
    return out


def _detect(run, params, eval_size, reward_range_given, eval_set=None, state=None):
    p = params or DetectParams()
    steps = run.steps
    last = int(steps["step"].max()) if steps.height and steps["step"].max() is not None else 0
    groups = _group_columns(run)
    train_groups = groups.filter(pl.col("mode") == "train") if groups.height else groups
    given = reward_range_given or run.meta.get("reward_range")
    out = detect_signal_gap(steps, p.signal_gap, groups=train_groups, group_size=run.meta.get("group_size"),
                            reward_range_given=given)
    evals = run.evals
    if eval_size is not None and evals.height:
        sizes = {s: size_of(eval_size, s) for s in evals["eval_set"].unique().to_list()}
        evals = evals.with_columns(pl.col("n").fill_null(pl.col("eval_set").replace_strict(sizes, default=None,
                                                                                            return_dtype=pl.Int64)))
    if eval_set is not None:
        known = evals.filter(pl.col("metric") == "accuracy")["eval_set"].unique(maintain_order=True).to_list()
        if eval_set not in known:
            raise ValueError(f"run {getattr(run, 'name', '?')}: --eval-set {eval_set!r} is not one of its held-out sets; it has "
                             f"{known or 'none'}")
    a = align(steps, evals, run.eval_items, list(run.meta.get("reward_funcs", [])), eval_set=eval_set)
    n_acc = int(np.isfinite(a.acc).sum()) if len(a) else 0
    if n_acc < p.decoupling.min_evals:
        have = "no held-out evaluations" if n_acc == 0 else f"{n_acc} held-out evaluation(s)"
        out.append(no_data(last, "decoupling",
                            f"Not enough data to judge reward-accuracy decoupling: {have}, at least "
                            f"{p.decoupling.min_evals} are needed. Add a HeldOut set evaluated every N steps "
                            "(or --accuracy-key / --map accuracy=KEY when importing)."))
    elif not np.isfinite(a.reward).any():
        out.append(no_data(last, "decoupling",
                            "Not enough data to judge reward-accuracy decoupling: the run has held-out accuracy but no "
                            "training reward near its evaluations (import with --map reward=KEY)."))
    if len(a):
        replay = None
        if state is not None:
            replay = state.get(("decoupling", eval_set))
            if replay is None or replay.p != p.decoupling:
                replay = state[("decoupling", eval_set)] = DecouplingReplay(p.decoupling)
        out += hindsight(a, detect_decoupling(a, p.decoupling, replay), p.decoupling)
        best = best_checkpoint(a)
        if best is not None:
            out.append(best)
    heldout = run.meta.get("heldout")  # the set the run trains for, where the run names it
    out += detect_transfer(evals, run.eval_items, heldout.get("name") if isinstance(heldout, dict) else None,
                           p.transfer)
    gaps = detect_truth_gap(steps, list(run.meta.get("reward_funcs", [])), p.truth_gap)
    out = [cite_truth(f, gaps, last) for f in out] + gaps
    causes = detect_causes(steps, p.causes)
    out = [cite(f, causes, last) if f.kind in ("decoupling", "reward_stall", "signal_gap", "truth_gap") else f
           for f in out] + causes
    return sorted(out, key=lambda f: (f.step, f.kind)), a


GROUP_COLUMNS = ["mode", "n_pass", "G"]  # what _group_columns reads: a caller may read them with others first


def _group_columns(run) -> pl.DataFrame:
    """The groups table's columns the signal-gap detector reads (a long run's table has millions of rows
    and 23 columns: a Run reads these three only, kept for the next call), else the whole table."""
    read = getattr(run, "columns", None)
    return read("groups", GROUP_COLUMNS) if callable(read) else run.groups
