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

Then one look at the run as it ends (`end_look`, every run length): where no episode is firing, the last
evaluations' level against the best, at `z_end` rather than the scan's `z_warn`. The scan looks at every
evaluation and pays for each look in its threshold; the end-of-run verdict is a single question, "does the
run end below its best while the reward holds?", and can ask it with less for the same false alarms.
"""

from __future__ import annotations

import math
from dataclasses import replace

from diag.detect.align import Aligned
from diag.detect.base import Finding
from diag.detect.decoupling import CONFIRM, DecouplingParams, DecouplingScanner, at_end, fold, judge_level, level_at
from diag.detect.levels import spread_sigma


def whole_run_spread(a: Aligned) -> tuple[float, float]:
    """One evaluation's noise around the trend over the whole run, and its degrees of freedom."""
    return spread_sigma(a.acc)


def hindsight(a: Aligned, live: list[Finding], p: DecouplingParams) -> list[Finding]:
    """The decoupling and stall findings of `live` (detect_decoupling's) replaced by a scan with the whole
    run's noise between evaluations, where the run is short enough and that noise can be estimated."""
    if not p.hindsight or not p.min_evals <= len(a) <= p.history:
        return _with_end_look(a, live, p, None)
    spread = whole_run_spread(a)
    if not math.isfinite(spread[0]):
        return _with_end_look(a, live, p, None)
    note = (f" Judged at the end with the whole run's noise between evaluations ({100 * spread[0]:.2f} points per "
            f"evaluation, {spread[1]:.0f} degrees of freedom).")
    judged = [at_end(a, f, p, a.acc) for f in fold(DecouplingScanner(p, a.acc).judge_all(a, 0))]
    judged = [f.with_note(note, noise_basis="whole run", spread_whole_run=spread[0]) if f.kind == "decoupling" else f
              for f in judged]
    confirmed = [g for g in judged if g.kind == "decoupling" and g.is_alert]
    withdrawn = [_withdrawn(f, spread, int(a.steps[-1])) for f in live
                 if f.kind == "decoupling" and f.is_alert and not any(_overlap(f, g) for g in confirmed)]
    return _with_end_look(a, sorted(judged + withdrawn, key=lambda f: (f.step, f.kind)), p, a.acc)


def _with_end_look(a: Aligned, found: list[Finding], p: DecouplingParams, whole) -> list[Finding]:
    f = end_look(a, found, p, whole)
    return found if f is None else found + [f]  # (the last step: the order by step holds)


def end_look(a: Aligned, found: list[Finding], p: DecouplingParams, whole=None) -> Finding | None:
    """One look at the run as it ends, where no decoupling episode is firing: the last evaluations' level
    against the best block, as the scan judges it (the same levels, selection correction, margin and
    reward test; `whole`: the whole run's noise), at `z_end` instead of `z_warn`. The scan looks at every
    evaluation, so its threshold pays for as many chances of a false alarm; a verdict on the run as it stands
    is one more look, and a run that ends 2.6 standard errors below its best while the reward holds has
    ended decoupled. A warning, never critical on this look alone."""
    if p.z_end is None or p.z_end >= p.z_warn or len(a) < p.min_evals:
        return None
    if any(f.kind == "decoupling" and f.is_alert and f.firing for f in found):
        return None
    k = len(a) - 1
    at = replace(p, z_warn=p.z_end)  # one evaluation alone still needs z_single
    f = judge_level(a, k, level_at(a, k, at, None, whole), at)
    if f is None:
        return None
    note = (f" Found by the end-of-run look: {f.evidence['z']:.1f} standard errors is under the {p.z_warn:g} the live "
            f"scan asks at each of the run's {len(a)} evaluations, over the {p.z_end:g} one look at the end asks; "
            "judged again at the end of each check, gone once the level recovers.")
    message = f.message.removesuffix(CONFIRM.format(window=at.window))  # the scan's lifecycle is not this look's
    return replace(f, severity="warning", message=message + note,
                   evidence={**f.evidence, "end_look": True, "z_end": p.z_end})


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
