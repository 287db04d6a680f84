"""Reward stall: the training reward trends up while held-out accuracy does not move.

Judged over the last `stall_window` evaluations (Theil-Sen on both). A warning when one reward component
carries at least half of the rise (format, length, partial credit: named); with a single reward it is
information only, since a reward that keeps rising on training prompts while held-out accuracy has
plateaued is also what ordinary late convergence looks like. A falling accuracy is not a stall (the
decoupling detector judges it). The episode logic lives in diag.detect.decoupling.DecouplingScanner.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from diag import stats
from diag.detect.align import Aligned
from diag.detect.base import Finding
from diag.detect.carriers import components, support

if TYPE_CHECKING:
    from diag.detect.decoupling import DecouplingParams


def stall_at(a: Aligned, k: int, p: DecouplingParams) -> Finding | None:
    w = p.stall_window
    if k + 1 < max(w, p.min_evals) or k >= len(a):
        return None
    sl = slice(k - w + 1, k + 1)
    x = a.steps[sl].astype(float)
    rt = stats.theil_sen(x, a.reward[sl])
    at = stats.theil_sen(x, a.acc[sl])
    span = float(x[-1] - x[0])
    if not (math.isfinite(rt.lo) and rt.significant_up and rt.slope * span >= p.stall_min_reward_rise):
        return None
    if not math.isfinite(at.slope) or at.slope * span > p.stall_max_acc_rise or at.significant_up:
        return None
    if at.significant_down:
        return None  # accuracy is falling, not flat: the falling pattern's to judge
    first, last = int(a.steps[sl][0]), int(a.steps[k])
    if first in a.items and last in a.items and len(a.items[first]) == len(a.items[last]):
        cmp = stats.paired_compare(a.items[first], a.items[last])
        if cmp.diff > 0 and cmp.p < p.stall_alpha:
            return None
    before, after = slice(sl.start, sl.start + w // 2), slice(sl.start + w // 2, k + 1)
    carrier, rises = components(a, before, after)
    total = sum(v for v in rises.values() if math.isfinite(v) and v > 0)
    carried = (carrier is not None and len(rises) > 1 and total > 0
               and rises[carrier] >= p.stall_carrier_share * total)
    if not carried and (not math.isfinite(at.hi) or at.hi * span > p.stall_acc_ci_max):
        return None  # one reward and accuracy may still be rising: too uncertain to say anything
    backing, sev = support(a, before, after)
    msg = (f"Training reward rose by {rt.slope * span:+.3f} over steps {first}-{last} (Theil-Sen slope "
           f"{rt.slope:.2g}/step, 95% CI {rt.lo:.2g}..{rt.hi:.2g}) while held-out accuracy ({a.eval_set}) "
           f"did not ({at.slope * span:+.3f}): the reward gain is not reaching the task.")
    if carried:
        msg += (f" The rise runs through '{carrier}' ({rises[carrier]:+.3f} of {total:+.3f}): that component pays "
                "for something the held-out verifier does not.")
    else:
        msg += (" With a single reward this is also what ordinary late convergence on the training prompts looks "
                "like: information, not an alert (record the strict verifier's verdict on training completions, "
                "truth=, to tell the two apart).")
    if backing:
        msg += f" Supporting evidence: {backing}."
    return Finding(
        kind="reward_stall", severity="warning" if carried else "info", step=last, onset=first, window_start=first,
        window_end=last, message=msg,
        evidence={"pattern": "stall", "eval_set": a.eval_set, "reward_slope": rt.slope, "reward_ci": [rt.lo, rt.hi],
                  "reward_rise": rt.slope * span, "acc_slope": at.slope, "acc_rise": at.slope * span,
                  "carrier": carrier if carried else None, "component_rise": rises, **sev},
    )
