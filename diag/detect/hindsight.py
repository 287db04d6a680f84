"""The end-of-run decoupling verdict on a short run, judged again with the whole run's noise.

Live, the noise between evaluations at evaluation k is estimated from the evaluations before it: at the
fifth evaluation that is two or three second differences, a handful of degrees of freedom. A chance low
estimate then lets checkpoint-to-checkpoint variation (which no eval size shows) pass for a fall, and a
chance high one hides a real dip; the monitor cannot know better at the time. At the end, `grpo-diag
check` knows every evaluation: the spread over all of them (the kinks where the run turns, falls or
recovers clipped out, as live) is the better estimate at every evaluation, so a run of at most `history`
evaluations is scanned again with it. Levels, thresholds and episode rules are the live scan's; only the
noise differs. Its episodes are the verdict. An episode the live scan raised that the second scan does
not confirm is kept, as information that says what the monitor said and why it is withdrawn, never
dropped silently. Longer runs keep the live verdict: past their first `history` evaluations the live
estimate has as many degrees of freedom as the whole run's would.
"""

from __future__ import annotations

import math
from dataclasses import replace

from diag.detect.align import Aligned
from diag.detect.base import Finding
from diag.detect.decoupling import DecouplingParams, DecouplingScanner, at_end, fold
from diag.detect.levels import spread_sigma


def whole_run_spread(a: Aligned) -> tuple[float, float]:
    """One evaluation's noise around the trend over the whole run, and its degrees of freedom."""
    return spread_sigma(a.acc)


def hindsight(a: Aligned, live: list[Finding], p: DecouplingParams) -> list[Finding]:
    """The decoupling and stall findings of `live` (detect_decoupling's) replaced by a scan with the whole
    run's noise between evaluations, where the run is short enough and that noise can be estimated."""
    if not p.hindsight or not p.min_evals <= len(a) <= p.history:
        return live
    spread = whole_run_spread(a)
    if not math.isfinite(spread[0]):
        return live
    note = (f" Judged at the end with the whole run's noise between evaluations ({100 * spread[0]:.2f} points per "
            f"evaluation, {spread[1]:.0f} degrees of freedom).")
    judged = [at_end(a, f, p, a.acc) for f in fold(DecouplingScanner(p, a.acc).judge_all(a, 0))]
    judged = [f.with_note(note, noise_basis="whole run", spread_whole_run=spread[0]) if f.kind == "decoupling" else f
              for f in judged]
    confirmed = [g for g in judged if g.kind == "decoupling" and g.is_alert]
    withdrawn = [_withdrawn(f, spread, int(a.steps[-1])) for f in live
                 if f.kind == "decoupling" and f.is_alert and not any(_overlap(f, g) for g in confirmed)]
    return sorted(judged + withdrawn, key=lambda f: (f.step, f.kind))  # (live holds these two kinds only)


def _overlap(f: Finding, g: Finding) -> bool:
    """The two episodes share an evaluation window."""
    end_f = f.resolved_step if f.resolved_step is not None else f.window_end
    end_g = g.resolved_step if g.resolved_step is not None else g.window_end
    return f.window_start <= end_g and g.window_start <= end_f


def _withdrawn(f: Finding, spread: tuple[float, float], last: int) -> Finding:
    why = (f"judged with the whole run's noise between evaluations ({100 * spread[0]:.2f} points per evaluation, "
           f"{spread[1]:.0f} degrees of freedom, against the {f.evidence.get('test', 'noise')} known when it was "
           "raised) the fall is within noise: withdrawn")
    done = f.with_note(f" Withdrawn at the end: {why}.") if f.state == "resolved" else f.resolve(last, why)
    return replace(done, severity="info", evidence={**done.evidence, "withdrawn": why, "live_severity": f.severity})
