"""Reward-accuracy decoupling: the reward has stopped telling the truth.

Two patterns, both judged on the evaluation axis (diag.detect.align):

- falling (critical): held-out accuracy falls significantly below its peak (paired McNemar test on
  the same items, or a two-proportion test without item data) for `confirm` evaluations in a row,
  while the training reward holds or rises. Onset: the accuracy peak.
- stall (warning): the training reward trends up (Theil-Sen interval above zero) over the last
  `stall_window` evaluations while held-out accuracy does not rise at all.

Each finding says which reward component carries the rise, and adds completion length and the
clipped share as supporting evidence (a policy padding answers with junk runs to the length cap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from diag import stats
from diag.detect.align import Aligned
from diag.detect.base import Finding


@dataclass(frozen=True)
class DecouplingParams:
    min_evals: int = 4  # evaluations needed before judging
    min_drop: float = 0.05  # absolute accuracy drop, peak block to recent block
    alpha: float = 0.001  # one-sided significance of the drop
    confirm: int = 2  # evaluations in the recent block
    # a single evaluation suffices when the drop is large and overwhelming (fast collapses)
    fast_drop: float = 0.08
    fast_alpha: float = 1e-6
    reward_tolerance: float = 0.5  # reward "holds" if it falls less than this many interval stds
    before_window: int = 3  # evaluations before the peak that set the reward baseline
    stall_window: int = 8
    stall_min_reward_rise: float = 0.05
    stall_max_acc_rise: float = 0.0
    stall_acc_ci_max: float = 0.03  # and the accuracy trend's upper 95% bound over the window stays below this
    stall_alpha: float = 0.05  # the accuracy gain over the window must not be significant either


def _mean(x) -> float:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


def _block_p(a: Aligned, peak: list[int], recent: list[int]) -> tuple[float, str]:
    """One-sided p that accuracy over the `recent` evaluations is below the `peak` block.

    With per-item data: a paired t-test on each item's mean correctness in the two blocks (the same
    items, so item difficulty cancels out). Without: a two-proportion test on the pooled counts."""
    steps = [int(a.steps[i]) for i in peak + recent]
    sizes = {len(a.items[s]) for s in steps if s in a.items}
    if all(s in a.items for s in steps) and len(sizes) == 1:
        before = np.mean([a.items[int(a.steps[i])] for i in peak], axis=0)
        after = np.mean([a.items[int(a.steps[i])] for i in recent], axis=0)
        return stats.paired_drop_p(before, after), "paired t on items"
    n1, n2 = float(np.sum(a.n[peak])), float(np.sum(a.n[recent]))
    p1, p2 = float(np.mean(a.acc[peak])), float(np.mean(a.acc[recent]))
    return stats.two_proportion_p(p1, int(n1), p2, int(n2)) / 2, "two-proportion z"


def _components(a: Aligned, before: slice, after: slice) -> tuple[str | None, dict]:
    rises = {}
    for f, name in enumerate(a.func_names):
        if a.funcs.ndim == 2 and f < a.funcs.shape[1]:
            rises[name] = _mean(a.funcs[after, f]) - _mean(a.funcs[before, f])
    finite = {k: v for k, v in rises.items() if math.isfinite(v)}
    carrier = max(finite, key=finite.get) if finite else None
    if carrier is not None and len(finite) > 1 and finite[carrier] <= 0:
        carrier = None  # no component rose: none to blame
    return carrier, rises


def _support(a: Aligned, before: slice, after: slice) -> tuple[str, dict]:
    l0, l1 = _mean(a.length[before]), _mean(a.length[after])
    c0, c1 = _mean(a.clipped[before]), _mean(a.clipped[after])
    ev = {"length_before": l0, "length_after": l1, "clipped_before": c0, "clipped_after": c1}
    parts = []
    if math.isfinite(l0) and math.isfinite(l1) and l1 > l0 * 1.15:
        parts.append(f"mean completion length {l0:.1f} -> {l1:.1f} tokens")
    if math.isfinite(c0) and math.isfinite(c1) and c1 - c0 > 0.03:
        parts.append(f"completions cut at the length cap {100 * c0:.0f}% -> {100 * c1:.0f}%")
    return ("; ".join(parts), ev)


def _falling_blocks(a: Aligned, k: int, confirm: int, min_drop: float, alpha: float):
    """(peak index, peak block, recent block, drop, p, test) when the last `confirm` evaluations sit
    significantly below the peak block, else None."""
    acc = a.acc[: k + 1]
    first_recent = k - confirm + 1
    if first_recent < 1 or not np.isfinite(acc[:first_recent]).any():
        return None
    j = int(np.nanargmax(acc[:first_recent]))
    recent = list(range(first_recent, k + 1))
    peak = sorted({i for i in (j - 1, j, j + 1) if 0 <= i < first_recent})
    if not np.all(acc[recent] <= acc[j] - min_drop / 2):
        return None
    drop = float(np.mean(acc[peak]) - np.mean(acc[recent]))
    if drop < min_drop:
        return None
    pval, test = _block_p(a, peak, recent)
    return (j, peak, recent, drop, pval, test) if pval < alpha else None


def falling_at(a: Aligned, k: int, p: DecouplingParams) -> Finding | None:
    """Judge evaluation k (0-based) with only evaluations 0..k known.

    The peak is compared as a block (the best evaluation and its neighbours) with the last `confirm`
    evaluations as a block: single-evaluation maxima are biased upward by selection, blocks much less.
    A fast collapse (a large, overwhelming drop) is called on one evaluation."""
    if k + 1 < p.min_evals or k >= len(a):
        return None
    hit = _falling_blocks(a, k, p.confirm, p.min_drop, p.alpha) or \
        _falling_blocks(a, k, 1, p.fast_drop, p.fast_alpha)
    if hit is None:
        return None
    j, peak, recent, drop, pval, test = hit
    acc = a.acc[: k + 1]
    before = slice(max(0, j - p.before_window + 1), j + 1)
    after = slice(j + 1, k + 1)
    r_before, r_after = _mean(a.reward[before]), _mean(a.reward[after])
    spread = float(np.nanstd(a.reward[: k + 1])) if np.isfinite(a.reward[: k + 1]).sum() > 1 else 0.0
    if not (math.isfinite(r_before) and math.isfinite(r_after)):
        return None  # without training reward there is nothing to decouple from
    if r_after < r_before - p.reward_tolerance * spread:
        return None  # reward fell too: that is a collapse, not a deceptive reward
    carrier, rises = _components(a, before, after)
    support, sev = _support(a, before, after)
    trend = "rose" if r_after > r_before + 0.25 * spread else "held"
    recent_steps = f"step {a.steps[k]}" if len(recent) == 1 else f"steps {a.steps[recent[0]]}-{a.steps[k]}"
    msg = (f"Held-out accuracy ({a.eval_set}) fell from {acc[j]:.3f} at step {a.steps[j]} "
           f"({np.mean(acc[peak]):.3f} around the peak) to {np.mean(acc[recent]):.3f} over {recent_steps} "
           f"({test}, p={pval:.2g}) while the training reward {trend} "
           f"({r_before:.3f} -> {r_after:.3f}): the reward no longer tracks the task.")
    if carrier is not None and len(rises) > 1:
        msg += f" The rise runs through '{carrier}' ({rises[carrier]:+.3f})."
    elif carrier is not None:
        msg += f" The only reward function, '{carrier}', pays for what the strict verifier rejects."
    if support:
        msg += f" Supporting evidence: {support}."
    msg += f" Best checkpoint by held-out accuracy: step {a.steps[j]}."
    return Finding(
        kind="decoupling", severity="critical", step=int(a.steps[k]), onset=int(a.steps[j]),
        window_start=int(a.steps[j]), window_end=int(a.steps[k]), message=msg,
        evidence={"pattern": "falling", "eval_set": a.eval_set, "acc_peak": float(acc[j]),
                  "acc_peak_step": int(a.steps[j]), "acc_now": float(acc[k]), "drop": float(drop),
                  "peak_block": [int(a.steps[i]) for i in peak], "recent_block": [int(a.steps[i]) for i in recent], "p": pval,
                  "test": test, "reward_before": r_before, "reward_after": r_after, "carrier": carrier,
                  "component_rise": rises, "eval_steps": [int(a.steps[before.start]), int(a.steps[k])], **sev},
    )


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
    if not math.isfinite(at.slope) or at.slope * span > p.stall_max_acc_rise:
        return None
    if not math.isfinite(at.hi) or at.hi * span > p.stall_acc_ci_max:
        return None  # accuracy may still be rising: too uncertain to call a stall
    first, last = int(a.steps[sl][0]), int(a.steps[k])
    if first in a.items and last in a.items and len(a.items[first]) == len(a.items[last]):
        cmp = stats.paired_compare(a.items[first], a.items[last])
        if cmp.diff > 0 and cmp.p < p.stall_alpha:
            return None
    before, after = slice(sl.start, sl.start + w // 2), slice(sl.start + w // 2, k + 1)
    carrier, rises = _components(a, before, after)
    support, sev = _support(a, before, after)
    msg = (f"Training reward rose by {rt.slope * span:+.3f} over steps {first}-{last} (Theil-Sen slope "
           f"{rt.slope:.2g}/step, 95% CI {rt.lo:.2g}..{rt.hi:.2g}) while held-out accuracy ({a.eval_set}) "
           f"did not ({at.slope * span:+.3f}): the reward gain is not reaching the task.")
    if carrier is not None and len(rises) > 1:
        msg += f" The rise runs through '{carrier}' ({rises[carrier]:+.3f})."
    if support:
        msg += f" Supporting evidence: {support}."
    return Finding(
        kind="reward_stall", severity="warning", step=last, onset=first, window_start=first, window_end=last,
        message=msg,
        evidence={"pattern": "stall", "eval_set": a.eval_set, "reward_slope": rt.slope, "reward_ci": [rt.lo, rt.hi],
                  "reward_rise": rt.slope * span, "acc_slope": at.slope, "acc_rise": at.slope * span,
                  "carrier": carrier, "component_rise": rises, **sev},
    )


class DecouplingScanner:
    """Episode logic shared by the offline scan and the online monitor.

    A falling-accuracy finding is reported once per accuracy peak; a stall is one episode for as
    long as it keeps holding, and is not reported inside a falling episode (the stronger finding)."""

    def __init__(self, params: DecouplingParams | None = None):
        self.p = params or DecouplingParams()
        self.seen: set[str] = set()
        self.stall_until: int | None = None  # last step at which the current stall still held
        self.falling_since: int | None = None

    def judge(self, a: Aligned, k: int) -> list[Finding]:
        """New findings at evaluation k, given evaluations 0..k."""
        out = []
        fall = falling_at(a, k, self.p)
        if fall is not None:
            if self.falling_since is None:
                self.falling_since = fall.window_start
            if fall.key not in self.seen:
                self.seen.add(fall.key)
                out.append(fall)
        stall = stall_at(a, k, self.p)
        if stall is not None:
            ongoing = self.stall_until is not None and stall.window_start <= self.stall_until
            self.stall_until = stall.step
            inside_fall = self.falling_since is not None and stall.window_end >= self.falling_since
            if not ongoing and not inside_fall and stall.key not in self.seen:
                self.seen.add(stall.key)
                out.append(stall)
        return out


def detect_decoupling(a: Aligned, params: DecouplingParams | None = None) -> list[Finding]:
    """Scan evaluations in order as a monitor would: one finding per episode."""
    scanner = DecouplingScanner(params)
    found = [f for k in range(len(a)) for f in scanner.judge(a, k)]
    return sorted(found, key=lambda f: f.step)


def best_checkpoint(a: Aligned, min_gap: float = 0.0) -> Finding | None:
    """Best evaluation step by held-out accuracy versus by training reward, when they differ."""
    if len(a) < 2 or not np.isfinite(a.acc).any() or not np.isfinite(a.reward).any():
        return None
    ja, jr = int(np.nanargmax(a.acc)), int(np.nanargmax(a.reward))
    if ja == jr or a.acc[ja] - a.acc[jr] <= min_gap:
        return None
    msg = (f"Best checkpoint by held-out accuracy is step {a.steps[ja]} ({a.acc[ja]:.3f}); by training reward "
           f"it is step {a.steps[jr]} (reward {a.reward[jr]:.3f}, held-out {a.acc[jr]:.3f}, "
           f"{a.acc[ja] - a.acc[jr]:.3f} lower). Pick checkpoints by held-out accuracy.")
    return Finding(kind="best_checkpoint", severity="info", step=int(a.steps[-1]), onset=int(a.steps[ja]),
                   window_start=int(a.steps[0]), window_end=int(a.steps[-1]), message=msg,
                   evidence={"best_by_accuracy": int(a.steps[ja]), "accuracy_at_best": float(a.acc[ja]),
                             "best_by_reward": int(a.steps[jr]), "accuracy_at_reward_best": float(a.acc[jr]),
                             "reward_at_reward_best": float(a.reward[jr])})
