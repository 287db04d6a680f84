"""Reward-accuracy decoupling: the reward has stopped telling the truth.

Two patterns, both judged on the evaluation axis (diag.detect.align):

- falling: held-out accuracy falls significantly below its peak (a paired test on the same items; a
  two-proportion test with eval sizes but no items; without either, a test on the spread between
  evaluations, which the finding calls weaker) while the training reward holds or rises. Onset: the
  accuracy peak. One evaluation below the peak is a warning; `confirm` evaluations in a row make it
  critical (a transient dip on a large held-out set is not critical on its own). The alert resolves
  when accuracy comes back within noise of the peak, and a later fall is a new episode.
- stall (warning): the training reward trends up (Theil-Sen interval above zero) over the last
  `stall_window` evaluations while held-out accuracy does not rise at all.

Each finding says which reward component carries the rise, and adds completion length and the
clipped share as supporting evidence (a policy padding answers with junk runs to the length cap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from diag import stats
from diag.detect.align import Aligned
from diag.detect.base import Finding
from diag.summary import best_checkpoints


@dataclass(frozen=True)
class DecouplingParams:
    min_evals: int = 4  # evaluations needed before judging
    min_drop: float = 0.05  # absolute accuracy drop, peak block to recent block (critical)
    single_alpha: float = 1e-4  # one evaluation alone must clear this stricter level to warn
    alpha: float = 3e-4  # one-sided significance of the drop (two or more evaluations)
    confirm: int = 3  # evaluations below the peak before the alert is critical (one gives a warning)
    resolve_alpha: float = 0.05  # back within noise: the latest evaluation no longer below the peak at this level
    stall_resolve: int = 2  # evaluations without the stall pattern that end a stall episode
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


SPREAD_TEST = "spread between evaluations (no eval size: a weaker test; pass --eval-size N)"


def _block_p(a: Aligned, peak: list[int], recent: list[int]) -> tuple[float, str]:
    """One-sided p that accuracy over the `recent` evaluations is below the `peak` block.

    With per-item data: a paired t-test on each item's mean correctness in the two blocks (the same
    items, so item difficulty cancels out). With eval sizes: a two-proportion test on the pooled
    counts. With neither (imported logs): the spread between evaluations sets the noise."""
    steps = [int(a.steps[i]) for i in peak + recent]
    sizes = {len(a.items[s]) for s in steps if s in a.items}
    if all(s in a.items for s in steps) and len(sizes) == 1:
        before = np.mean([a.items[int(a.steps[i])] for i in peak], axis=0)
        after = np.mean([a.items[int(a.steps[i])] for i in recent], axis=0)
        return stats.paired_drop_p(before, after), "paired t on items"
    n = np.asarray(a.n, dtype=float)
    if np.all(np.isfinite(n[peak + recent])) and np.all(n[peak + recent] >= 1):
        n1, n2 = float(np.sum(n[peak])), float(np.sum(n[recent]))
        p1, p2 = float(np.mean(a.acc[peak])), float(np.mean(a.acc[recent]))
        return stats.two_proportion_p(p1, int(n1), p2, int(n2)) / 2, "two-proportion z"
    return stats.spread_drop_p(a.acc[: max(peak + recent) + 1], peak, recent), SPREAD_TEST


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


def _peak(acc: np.ndarray, first_recent: int) -> tuple[int, list[int]]:
    """The best evaluation before `first_recent` and its neighbours (the peak block)."""
    j = int(np.nanargmax(acc[:first_recent]))
    return j, sorted({i for i in (j - 1, j, j + 1) if 0 <= i < first_recent and np.isfinite(acc[i])})


def _falling_blocks(a: Aligned, k: int, confirm: int, min_drop: float, alpha: float):
    """(peak index, peak block, recent block, drop, p, test) when the last `confirm` evaluations sit
    significantly below the peak block, else None."""
    acc = a.acc[: k + 1]
    first_recent = k - confirm + 1
    if first_recent < 1 or not np.isfinite(acc[:first_recent]).any():
        return None
    j, peak = _peak(acc, first_recent)
    recent = list(range(first_recent, k + 1))
    if not np.all(np.isfinite(acc[recent])) or not np.all(acc[recent] <= acc[j] - min_drop / 2):
        return None
    drop = float(np.mean(acc[peak]) - np.mean(acc[recent]))
    if drop < min_drop:
        return None
    pval, test = _block_p(a, peak, recent)
    return (j, peak, recent, drop, pval, test) if pval < alpha else None


def falling_at(a: Aligned, k: int, p: DecouplingParams, confirm: int | None = None) -> Finding | None:
    """Judge evaluation k (0-based) with only evaluations 0..k known.

    The peak is compared as a block (the best evaluation and its neighbours) with the last `confirm`
    evaluations as a block: single-evaluation maxima are biased upward by selection, blocks much less.
    One evaluation below the peak gives a warning; `p.confirm` in a row a critical finding."""
    confirm = p.confirm if confirm is None else confirm
    if k + 1 < p.min_evals or k >= len(a):
        return None
    hit = _falling_blocks(a, k, confirm, p.min_drop, p.single_alpha if confirm == 1 else p.alpha)
    if hit is None:
        return None
    j, peak, recent, drop, pval, test = hit
    acc = a.acc[: k + 1]
    before = slice(max(0, j - p.before_window + 1), j + 1)
    # the reward is judged where accuracy is judged: around the peak versus over the recent block (a dip
    # of both on the way down, then a reward that recovers while accuracy does not, is decoupling)
    after = slice(recent[0], k + 1)
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
    if test == SPREAD_TEST:
        msg += (" The log has no eval size, so the drop was judged from the spread between evaluations, "
                "a weaker test: pass --eval-size N to judge it properly.")
    if confirm < p.confirm:
        msg += (f" {confirm} evaluation(s) so far: critical once {p.confirm} in a row stay below the peak, resolved "
                "if accuracy recovers.")
    return Finding(
        kind="decoupling", severity="critical" if confirm >= p.confirm else "warning", step=int(a.steps[k]), onset=int(a.steps[j]),
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


def recovered(a: Aligned, k: int, open_: Finding, p: DecouplingParams) -> str | None:
    """Why evaluation k is back within noise of the episode's peak block, or None if it is not."""
    steps = [int(x) for x in a.steps]
    block = [steps.index(s) for s in open_.evidence.get("peak_block", []) if s in steps]
    if not block or not np.isfinite(a.acc[k]):
        return None
    level = float(np.mean(a.acc[block]))
    if a.acc[k] >= level - p.min_drop / 2:
        return f"held-out accuracy {a.acc[k]:.3f} is back within {p.min_drop / 2:.3f} of the peak block ({level:.3f})"
    pval, test = _block_p(a, block, [k])
    if pval > p.resolve_alpha:
        return (f"held-out accuracy {a.acc[k]:.3f} is no longer significantly below the peak block ({level:.3f}; "
                f"{test}, p={pval:.2g})")
    return None


class DecouplingScanner:
    """Episode logic shared by the offline scan and the online monitor; `judge` returns events.

    An event is a Finding: a new alert, the same id at a higher severity (escalation), or the same id
    resolved. A falling episode starts as a warning on one evaluation below the peak, escalates to
    critical when `confirm` evaluations in a row are, and resolves when accuracy comes back within
    noise of the peak block. A stall is one episode for as long as it keeps holding, is not reported
    inside a falling episode (the stronger finding), and resolves after `stall_resolve` evaluations
    without the pattern."""

    def __init__(self, params: DecouplingParams | None = None):
        self.p = params or DecouplingParams()
        self.open: Finding | None = None  # the current falling episode, as last reported
        self.episodes: dict[int, int] = {}  # onset -> falling episodes seen from that peak
        self.stall: Finding | None = None
        self.stall_misses = 0

    def judge(self, a: Aligned, k: int) -> list[Finding]:
        """Events at evaluation k, given evaluations 0..k."""
        out = self._falling(a, k)
        out += self._stall(a, k)
        return out

    def _falling(self, a: Aligned, k: int) -> list[Finding]:
        p, step = self.p, int(a.steps[k])
        if self.open is not None:
            why = recovered(a, k, self.open, p)
            if why is not None:
                done, self.open = self.open.resolve(step, why), None
                return [done]
            if self.open.severity == "critical":
                return []
            crit = falling_at(a, k, p)
            if crit is None or crit.onset != self.open.onset:
                return []
            self.open = replace(crit, step=self.open.step, episode=self.open.episode,
                                evidence={**crit.evidence, "first_alert_step": self.open.step, "critical_at": step})
            return [self.open]
        # a warning on the first evidence: two evaluations below the peak, or one far below it
        f = falling_at(a, k, p) or falling_at(a, k, p, confirm=2) or falling_at(a, k, p, confirm=1)
        if f is None:
            return []
        n = self.episodes[f.onset] = self.episodes.get(f.onset, 0) + 1
        self.open = replace(f, episode=n)
        return [self.open]

    def _stall(self, a: Aligned, k: int) -> list[Finding]:
        stall = stall_at(a, k, self.p)
        if self.stall is not None:
            if stall is not None:
                self.stall_misses = 0
                return []
            self.stall_misses += 1
            if self.stall_misses >= self.p.stall_resolve:
                done, self.stall = self.stall.resolve(int(a.steps[k]), "reward and held-out accuracy move together again"), None
                return [done]
            return []
        if stall is None or (self.open is not None and stall.window_end >= self.open.window_start):
            return []
        self.stall, self.stall_misses = stall, 0
        return [stall]


def fold(events: list[Finding]) -> list[Finding]:
    """The final state of each alert id (the last event wins), in order of first detection."""
    last: dict[str, Finding] = {}
    for e in events:
        last[e.key] = e
    return sorted(last.values(), key=lambda f: (f.step, f.kind))


def detect_decoupling(a: Aligned, params: DecouplingParams | None = None) -> list[Finding]:
    """Scan evaluations in order as a monitor would: one finding per episode, in its final state."""
    scanner = DecouplingScanner(params)
    return fold([f for k in range(len(a)) for f in scanner.judge(a, k)])


def best_checkpoint(a: Aligned, min_gap: float = 0.0) -> Finding | None:
    """Best evaluation step by held-out accuracy versus by training reward, when they differ."""
    best = best_checkpoints(a) if len(a) >= 2 else None
    if best is None or best["by_reward"] is None:
        return None
    ba, br = best["by_accuracy"], best["by_reward"]
    if ba["step"] == br["step"] or ba["accuracy"] - br["accuracy"] <= min_gap:
        return None
    msg = (f"Best checkpoint by held-out accuracy is step {ba['step']} ({ba['accuracy']:.3f}); by training reward "
           f"it is step {br['step']} (reward {br['reward']:.3f}, held-out {br['accuracy']:.3f}, "
           f"{ba['accuracy'] - br['accuracy']:.3f} lower). Pick checkpoints by held-out accuracy.")
    return Finding(kind="best_checkpoint", severity="info", step=int(a.steps[-1]), onset=ba["step"],
                   window_start=int(a.steps[0]), window_end=int(a.steps[-1]), message=msg,
                   evidence={"best_by_accuracy": ba["step"], "accuracy_at_best": ba["accuracy"],
                             "best_by_reward": br["step"], "accuracy_at_reward_best": br["accuracy"],
                             "reward_at_reward_best": br["reward"]})
