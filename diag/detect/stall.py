"""Reward stall: the training reward trends up while held-out accuracy does not move.

Judged over the last `stall_window` evaluations (Theil-Sen on both). A warning when one reward component
carries at least half of the rise (format, length, partial credit: named); with a single reward it is
information only, since a reward that keeps rising on training prompts while held-out accuracy has
plateaued is also what ordinary late convergence looks like; and so with a component that is the task's
own check (diag.detect.carriers.verifier_like): rising on the training prompts alone, it says the policy
fits them, not that the reward pays for what the check rejects. A falling accuracy is not a stall (the
decoupling detector judges it). The episode logic lives in diag.detect.decoupling.DecouplingScanner.
"""

from __future__ import annotations

import math

import numpy as np
from typing import TYPE_CHECKING

from diag import stats
from diag.detect.align import Aligned
from diag.detect.base import Finding
from diag.detect.levels import spread_sigma
from diag.detect.carriers import components, mean, support, verifier_like

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
    levels = {"acc_before": mean(a.acc[before]), "carrier_before": (mean(a.funcs[before, a.func_names.index(carrier)])
                                                                     if carried else None)}
    msg = (f"Training reward rose by {rt.slope * span:+.3f} over steps {first}-{last} (Theil-Sen slope "
           f"{rt.slope:.2g}/step, 95% CI {rt.lo:.2g}..{rt.hi:.2g}) while held-out accuracy ({a.eval_set}) "
           f"did not ({at.slope * span:+.3f}): the reward gain is not reaching the task.")
    own = verifier_like(a, carrier) if carried else None
    if own:
        msg += (f" The rise runs through '{carrier}' ({rises[carrier]:+.3f} of {total:+.3f}), the task's own check on "
                f"the training prompts ({own}): the policy is fitting its training prompts (memorising them, or they "
                "are easier than the held-out ones), not being paid for something the check rejects. Information.")
    elif carried:
        msg += (f" The rise runs through '{carrier}' ({rises[carrier]:+.3f} of {total:+.3f}): that component pays "
                "for something the held-out verifier does not.")
    else:
        msg += (" With a single reward this is also what ordinary late convergence on the training prompts looks "
                "like: information, not an alert (record the strict verifier's verdict on training completions, "
                "truth=, to tell the two apart).")
    if backing:
        msg += f" Supporting evidence: {backing}."
    return Finding(
        kind="reward_stall", severity="warning" if carried and not own else "info", step=last, onset=first, window_start=first,
        window_end=last, message=msg,
        evidence={"pattern": "stall", "eval_set": a.eval_set, "reward_slope": rt.slope, "reward_ci": [rt.lo, rt.hi],
                  "reward_rise": rt.slope * span, "acc_slope": at.slope, "acc_rise": at.slope * span,
                  "carrier": carrier if carried else None, "carrier_is_check": bool(own), "component_rise": rises, **levels, **sev},
    )


def still_carried(a: Aligned, k: int, f: Finding, p: DecouplingParams) -> bool:
    """Whether a stall carried by a component holds at evaluation k though the window's trends no longer
    show it (the reward has stopped rising, at its high): the carrier still pays at least half the rise it
    paid at the opening and held-out accuracy has not caught up (its recent level is not above its level
    at the opening by more than its noise). A rise that lasts is a stall that lasts."""
    c = f.evidence.get("carrier")
    if c is None or c not in a.func_names or f.evidence.get("carrier_before") is None:
        return False
    h = max(1, p.stall_window // 2)
    recent = slice(max(0, k - h + 1), k + 1)
    paid = mean(a.funcs[recent, a.func_names.index(c)]) - f.evidence["carrier_before"]
    rise = f.evidence.get("component_rise", {}).get(c, math.nan)
    if not (math.isfinite(paid) and math.isfinite(rise)) or paid < 0.5 * rise:
        return False  # the component stopped carrying the reward
    acc_now, acc_before = mean(a.acc[recent]), f.evidence.get("acc_before", math.nan)
    if not (math.isfinite(acc_now) and math.isfinite(acc_before)):
        return False
    n = a.n[recent]
    n = float(np.nanmean(n)) if np.isfinite(n).any() else math.nan
    if math.isfinite(n) and n >= 1:
        q = min(max(acc_before, 0.0), 1.0)
        noise = 2 * math.sqrt(q * (1 - q) / n * 2 / (recent.stop - recent.start))
    else:
        sigma, _ = spread_sigma(a.acc[: k + 1])
        noise = 2 * sigma * math.sqrt(2 / (recent.stop - recent.start)) if math.isfinite(sigma) else 0.0
    return acc_now - acc_before <= max(p.stall_max_acc_rise, noise)  # accuracy has not caught up
