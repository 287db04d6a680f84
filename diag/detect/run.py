"""Run every detector on a run's frames: the offline `grpo-diag check`."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from diag.detect.align import align
from diag.detect.base import Finding
from diag.detect.decoupling import DecouplingParams, best_checkpoint, detect_decoupling
from diag.detect.signal_gap import SignalGapParams, detect_signal_gap


@dataclass(frozen=True)
class DetectParams:
    signal_gap: SignalGapParams = field(default_factory=SignalGapParams)
    decoupling: DecouplingParams = field(default_factory=DecouplingParams)


def detect_all(run, params: DetectParams | None = None) -> list[Finding]:
    """Findings for a diag.Run (or anything with .steps/.groups/.evals/.eval_items/.meta)."""
    p = params or DetectParams()
    steps = run.steps
    train_groups = run.groups.filter(pl.col("mode") == "train") if run.groups.height else run.groups
    out = detect_signal_gap(steps, p.signal_gap, groups=train_groups, group_size=run.meta.get("group_size"),
                            reward_ceiling=run.meta.get("reward_ceiling"))
    a = align(steps, run.evals, run.eval_items, list(run.meta.get("reward_funcs", [])))
    if len(a):
        out += detect_decoupling(a, p.decoupling)
        best = best_checkpoint(a)
        if best is not None:
            out.append(best)
    else:
        out.append(Finding(kind="no_data", severity="info", step=int(steps["step"].max()) if steps.height else 0,
                           onset=None, window_start=None, window_end=None,
                           message="No held-out evaluations in this run: reward-accuracy decoupling cannot be "
                                   "judged. Add a HeldOut set (or --accuracy-key when importing).",
                           evidence={}))
    return sorted(out, key=lambda f: (f.step, f.kind))
