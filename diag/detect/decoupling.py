"""Reward-accuracy decoupling: the reward has stopped telling the truth.

Judged on the evaluation axis (diag.detect.align), on accuracy *levels* (diag.detect.levels): the mean
of a block of evaluations with its uncertainty, never one evaluation.

- falling: the current level (the last 1..`max_window` evaluations) sits below the best level the
  run reached (its best block, corrected for having been picked as the best) by more than noise (z)
  AND by a practical margin (Cohen's h), while the training reward holds or rises, or falls by a much
  smaller share of its level than accuracy does (both falling alike is a collapse, not a deceptive
  reward). A warning opens on the first evidence; the alert is critical from a later evaluation at
  which a level of `window` evaluations is `z_critical` below; it resolves only when the *level* is
  back within noise of the best block, and a later fall is a new episode.
- stall (diag.detect.stall, its episodes here): the training reward trends up while held-out accuracy
  does not rise; a warning when one component carries the rise, information with a single reward.

Each finding says which reward component carries the rise, and adds completion length and the
clipped share as supporting evidence (a policy padding answers with junk runs to the length cap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from diag.detect.align import Aligned
from diag.detect.base import Finding
from diag.detect import collapse, screen
from diag.detect.carriers import components, mean, support
from diag.detect.levels import (SPREAD, LevelDrop, block_means, cohens_h, current_drop, level_drop,
                                spread_sigma)
from diag.detect.moves import reward_moves
from diag.detect.sets import corroborated
from diag.detect.stall import stall_at, still_carried


@dataclass(frozen=True)
class DecouplingParams:
    min_evals: int = 5  # evaluations before judging: the spread between them needs four differences
    window: int = 3  # evaluations in the best block, and in a current level that makes an alert critical
    max_window: int = 6  # the current level is judged over the last 1..max_window evaluations
    best_max_width: int = 3  # the best level: the best block of window..best_max_width evaluations. Wider
    # blocks find more slow falls and, judged with hindsight, raise more false alarms: benchmarks/sweep.py's
    # rule (false alarms <= 1% first) chose 3 over 6 and 8 (docs/validity.md)
    lone_min_now: int | None = 4  # a run's first evaluation alone is its best level against a current level of
    # this many evaluations or more (all the rest of the run, sampling noise known); None: never
    hindsight: bool = True  # check's verdict on a run of at most `history` evaluations judges it again with
    # the whole run's noise between evaluations (diag.detect.hindsight); the live monitor cannot
    history: int = 64  # evaluations judged at each one (the best level is sought among them): bounded cost,
    # offline as live (the monitor keeps as many, MonitorConfig.max_evals)
    margin_h: float = 0.05  # practical margin, Cohen's h (2.5 points at 0.50 accuracy, 1.5 at 0.10 or 0.90)
    z_warn: float = 3.0  # standard errors below the best level to open a warning (two or more evaluations)
    z_single: float = 4.5  # one evaluation alone must be this far below to open a warning
    z_critical: float = 3.5  # a level of `window` evaluations this far below makes the alert critical
    z_resolve: float = 1.0  # the level back within this many standard errors of the best resolves it
    z_end: float | None = 2.6  # check's one look at the run's end (diag.detect.hindsight.end_look): z_warn guards every
    # evaluation of a live scan, so one look can ask less for the same false alarms; benchmarks/sweep.py's second
    # stage chose it (docs/validity.md). None: no end look
    transient: int = 2  # a resolved warning whose fall lasted at most this many evaluations, the reward having
    # dipped too, is a joint dip: information
    collapse_ratio: float = collapse.RATIO  # the reward lost at least this times accuracy's share of its level: a collapse
    stall_window: int = 8
    stall_min_reward_rise: float = 0.05
    stall_max_acc_rise: float = 0.02  # accuracy may rise at most this much (point estimate) over the window
    stall_acc_ci_max: float = 0.03  # single reward: the accuracy trend's upper 95% bound stays below this
    stall_alpha: float = 0.05  # the accuracy gain over the window must not be significant either
    stall_carrier_share: float = 0.5  # a component carrying this share of the rise makes the stall a warning
    stall_resolve: int = 2  # evaluations without the stall pattern that end a stall episode


def _items_by_index(a: Aligned, k: int) -> dict[int, np.ndarray]:
    """Per-item results by evaluation index, up to evaluation k (those a judgement at k reads)."""
    return {i: a.items[s] for i, s in enumerate(a.steps[: k + 1].tolist()) if s in a.items}


def _span(a: Aligned, idx: list[int]) -> str:
    s0, s1 = int(a.steps[idx[0]]), int(a.steps[idx[-1]])
    return f"step {s0}" if s0 == s1 else f"steps {s0}-{s1}"


def _noise(acc: np.ndarray, start: int, k: int, whole: np.ndarray | None) -> tuple[float, float]:
    """The noise between evaluations for a current level over start..k: from the evaluations known at k
    with no second difference spanning `start`; with `whole`, from the whole run, spanning neither edge
    of the level (its fall and its recovery are the effect, not noise)."""
    return spread_sigma(acc, cut=start) if whole is None else spread_sigma(whole, cut=(start, k + 1))


def level_at(a: Aligned, k: int, p: DecouplingParams, width: int | None = None,
              whole: np.ndarray | None = None) -> LevelDrop | None:
    """The current level that is most clearly below the best, over the last 1..max_window evaluations
    (or exactly `width`) against the best block of window..best_max_width evaluations before them: it must
    clear z and the practical margin, hold no evaluation at or above the best, and (if longer than
    `window`) still be down over its last `window` evaluations. A wider best block averages a long
    plateau's noise away (a 3-sd fall needs it); each width's best is corrected for its own selection.
    `whole`: the whole run's accuracy series, the noise between evaluations estimated over all of it
    (diag.detect.hindsight) instead of over those known at k."""
    items = None  # built once, on the first width that gets as far as judging
    acc = a.acc[: k + 1]
    best: LevelDrop | None = None
    for w in ([width] if width else range(1, p.max_window + 1)):
        if k + 1 <= w:
            break
        before = acc[: k - w + 1]
        now = float(np.mean(acc[k - w + 1:]))
        if not np.isfinite(before).any() or not math.isfinite(now) or cohens_h(float(np.nanmax(before)), now) < p.margin_h:
            continue  # no block before can be higher than its best evaluation: no width can clear the margin
        noise = _noise(acc, k - w + 1, k, whole)  # the same for every best width
        widths = sorted({min(wb, k - w + 1) for wb in range(p.window, max(p.window, p.best_max_width) + 1)})
        for wb in widths:  # (early on, several widths are cut to the evaluations there are: one each)
            means = block_means(before, wb)
            if not np.isfinite(means).any() or cohens_h(float(np.nanmax(means)), now) < p.margin_h:
                continue  # this width's best block, before its selection correction, is within the margin
            items = _items_by_index(a, k) if items is None else items
            d = corroborated(a, current_drop(acc, a.n, items, k, w, wb, noise, means, p.lone_min_now), k)
            if d is None or d.z < (p.z_warn if w > 1 else p.z_single) or d.h < p.margin_h:
                continue
            if np.any(a.acc[d.now_idx] >= d.best_corrected):
                continue  # a level that holds an evaluation at or above the best is no fall
            if w > p.window and not _still_down(a, d, k, p):
                continue  # a long window that is low because of an older dip, not now
            if best is None or _rank(d, p) > _rank(best, p):
                best = d
    return best


def falling_at(a: Aligned, k: int, p: DecouplingParams, width: int | None = None,
               whole: np.ndarray | None = None) -> Finding | None:
    """Judge evaluation k (0-based) with only evaluations 0..k known: a warning, a critical finding (a
    level over at least `window` evaluations at least `z_critical` below), or None (no fall, or the
    reward fell with accuracy: a collapse)."""
    if k + 1 < p.min_evals or k >= len(a):
        return None
    return judge_level(a, k, level_at(a, k, p, width, whole), p)


def judge_level(a: Aligned, k: int, d: LevelDrop | None, p: DecouplingParams) -> Finding | None:
    """The finding a level below the best gives at evaluation k: None without one, or when the reward
    fell alike (a collapse, not a deceptive reward)."""
    moves = None if d is None else reward_moves(a, d, k, p.collapse_ratio)
    if moves is None or not moves["apart"]:
        return None  # a collapse, or a reward not yet told apart from one
    critical = len(d.now_idx) >= p.window and d.z >= p.z_critical
    return _finding(a, k, d, moves, p, "critical" if critical else "warning")


def _still_down(a: Aligned, d: LevelDrop, k: int, p: DecouplingParams) -> bool:
    """The last `window` evaluations, on their own, sit below the best block by the practical margin."""
    recent = a.acc[k - p.window + 1: k + 1]
    return bool(np.all(np.isfinite(recent))) and cohens_h(d.best_corrected, float(np.mean(recent))) >= p.margin_h


def _rank(d: LevelDrop, p: DecouplingParams) -> tuple:
    """A sustained (critical-grade) level first, then the more significant one."""
    return (len(d.now_idx) >= p.window and d.z >= p.z_critical, d.z)


CONFIRM = (" Critical once a level of {window} evaluations stays below at the next evaluation too; resolved if "
            "the level recovers.")


def _finding(a: Aligned, k: int, d: LevelDrop, moves: dict, p: DecouplingParams, severity: str) -> Finding:
    peak = d.best_idx[int(np.nanargmax(a.acc[d.best_idx]))]  # the best evaluation inside the best block
    before = slice(d.best_idx[0], d.best_idx[-1] + 1)
    after = slice(d.now_idx[0], k + 1)
    carrier, rises = components(a, before, after)
    backing, sev = support(a, before, after)
    pts = 100 * d.drop
    corr = (f", {d.best_corrected:.3f} after correcting for picking the best of {d.contenders} blocks"
            if d.contenders > 1 else "")
    reward = {"rose": "rose", "held": "held",
              "fell less": f"fell by only {100 * moves['reward_share_lost']:.0f}% of its level while accuracy "
                           f"lost {100 * moves['accuracy_share_lost']:.0f}%"}[moves["trend"]]
    lone = " of the first evaluation alone: none before it to average" if len(d.best_idx) == 1 else ""
    msg = (f"Held-out accuracy ({a.eval_set}) fell from {d.best:.3f} over {_span(a, d.best_idx)} (the best level"
           f"{corr}{lone}) to {d.now:.3f} over {_span(a, d.now_idx)}: {pts:.1f} points below, {d.z:.1f} standard errors "
           f"(noise from {d.noise}; Cohen's h {d.h:.2f}, margin {p.margin_h:.2f}), while the training reward "
           f"{reward} ({moves['reward_before']:.3f} -> {moves['reward_after']:.3f}): the reward no longer tracks "
           "the task.")
    if d.sets:
        others = ", ".join(f"{name} {-100 * drop:+.1f} points, " + (f"correlation {r:.2f}" if r == r else
                                                                    "correlation not estimated: too few evaluations")
                           for name, drop, _, r in d.sets)
        msg += (f" The other held-out sets at the same steps ({others}) raise the evidence from {d.z_alone:.1f} on "
                f"{a.eval_set} alone to {d.z:.1f} standard errors combined.")
    scale = max(abs(moves["reward_before"]), abs(moves["reward_after"]))
    if carrier is not None and len(rises) > 1:
        if rises[carrier] >= 0.02 * scale:  # a rise worth naming (a bonus paid alike throughout carries nothing)
            msg += f" The rise runs through '{carrier}' ({rises[carrier]:+.3f})."
    elif carrier is not None:
        msg += f" The only reward function, '{carrier}', pays for what the held-out verifier rejects."
    if backing:
        msg += f" Supporting evidence: {backing}."
    msg += f" Best checkpoint by held-out accuracy so far: step {a.steps[peak]}."
    if d.noise == SPREAD and not np.isfinite(a.n[d.best_idx + d.now_idx]).all():
        msg += (" The log has no eval size, so the noise was judged from the spread between evaluations, "
                "a weaker test: pass --eval-size N to judge it properly.")
    if severity == "warning":
        msg += CONFIRM.format(window=p.window)
    return Finding(
        kind="decoupling", severity=severity, step=int(a.steps[k]), onset=int(a.steps[peak]),
        window_start=int(a.steps[d.best_idx[0]]), window_end=int(a.steps[k]), message=msg,
        evidence={"pattern": "falling", "eval_set": a.eval_set, "acc_peak": float(a.acc[peak]),
                  "acc_peak_step": int(a.steps[peak]), "acc_best_level": d.best, "acc_best_corrected": d.best_corrected,
                  "acc_now_level": d.now, "acc_now": float(a.acc[k]), "drop": d.drop, "z": d.z, "p": d.p,
                  "cohens_h": d.h, "margin_h": p.margin_h, "selection_bias": d.bias, "contenders": d.contenders,
                  "se": d.se, "test": d.noise, "z_alone": d.z_alone,
                  "other_sets": [{"eval_set": s, "drop": dr, "z": z, "correlation": r if r == r else None}
                                 for s, dr, z, r in d.sets], "peak_block": [int(a.steps[i]) for i in d.best_idx],
                  "recent_block": [int(a.steps[i]) for i in d.now_idx], **moves, "carrier": carrier,
                  "component_rise": rises, "eval_steps": [int(a.steps[d.best_idx[0]]), int(a.steps[k])], **sev},
    )


def _level_since(a: Aligned, f: Finding, k: int, p: DecouplingParams,
                 whole: np.ndarray | None = None) -> tuple[list[int], LevelDrop] | None:
    """The level at evaluation k against an episode's best block: the evaluations after that block, at
    most `window` of them (one good evaluation among bad ones moves it by a third, not all the way)."""
    steps = [int(x) for x in a.steps]
    best = [steps.index(s) for s in f.evidence.get("peak_block", []) if s in steps]
    if not best:
        return None
    now = list(range(max(best[-1] + 1, k - p.window + 1), k + 1))
    if not now or not np.all(np.isfinite(a.acc[now])):
        return None
    spread = _noise(a.acc[: k + 1], now[0], k, whole)
    d = corroborated(a, level_drop(a.acc[: k + 1], a.n, _items_by_index(a, k), best, now, k, spread=spread), k)
    return None if d is None else (now, d)


def recovered(a: Aligned, k: int, open_: Finding, p: DecouplingParams,
              whole: np.ndarray | None = None) -> str | None:
    """Why the level at evaluation k is back within noise of the episode's best block, or None."""
    level = _level_since(a, open_, k, p, whole)
    if level is None:
        return None
    now, d = level
    if d.z < p.z_resolve:
        return (f"the held-out accuracy level {d.now:.3f} over {_span(a, now)} is back within noise of the best "
                f"level ({d.best_corrected:.3f}; {d.z:.1f} standard errors, noise from {d.noise})")
    if d.h < p.margin_h / 2:
        return (f"the held-out accuracy level {d.now:.3f} over {_span(a, now)} is within half the practical margin "
                f"of the best level ({d.best_corrected:.3f}; Cohen's h {d.h:.2f})")
    return None


def _transient(done: Finding, a: Aligned, k: int, p: DecouplingParams) -> Finding:
    """A resolved warning whose fall held at most `transient` evaluations below the best level by the
    margin, while the training reward dipped too (by however little: it moved the same way), is a joint
    dip both series came back from: information, not a deceptive reward."""
    ev = done.evidence
    span = (a.steps >= min(ev.get("recent_block", [done.step]))) & (a.steps <= a.steps[k])
    best = ev.get("acc_best_corrected", math.nan)
    low = int(sum(cohens_h(best, float(x)) >= p.margin_h for x in a.acc[span] if math.isfinite(x)))
    if done.severity != "warning" or low > p.transient or not ev.get("reward_share_lost", 0) > 1e-6:
        return done
    note = (f" A joint dip: the training reward dipped too ({100 * ev['reward_share_lost']:.0f}% of its level) and "
            f"accuracy was down for {low} evaluation{'s' if low != 1 else ''} only: information, not a deceptive reward.")
    return replace(done.with_note(note, joint_dip=True), severity="info")


def collapsed(a: Aligned, k: int, d: LevelDrop | None, p: DecouplingParams) -> str | None:
    """Why evaluation k, whose level below the best is `d` (level_at), shows a collapse (the training
    reward fallen alike, by more than three standard errors of its noise), or None: an open episode that
    turns out to be a collapse (two evaluations in a row say so) is withdrawn: the reward tells the truth."""
    moves = None if d is None else reward_moves(a, d, k, p.collapse_ratio)
    if moves is None or not moves["collapse"]:
        return None
    return (f"the training reward fell with held-out accuracy (to {mean(a.reward[d.now_idx]):.3f} over "
            f"{_span(a, d.now_idx)}): a collapse, not a reward that stopped tracking the task")


class DecouplingScanner:
    """Episode logic shared by the offline scan and the online monitor; `judge` returns events.

    An event is a Finding: a new alert, the same id at a higher severity (escalation), or the same id
    resolved. A falling episode opens as a warning on the first evidence, is critical from the next
    evaluation at which a level of `window` evaluations is `z_critical` below (and no collapse shows),
    and resolves when the level comes back within noise of the best block, or is withdrawn when two
    evaluations in a row show the reward falling with accuracy. A stall is one episode for as long as it keeps holding,
    is not reported inside a falling episode (the stronger finding), and resolves after
    `stall_resolve` evaluations without the pattern."""

    def __init__(self, params: DecouplingParams | None = None, whole: np.ndarray | None = None,
                 screen: bool = True):
        self.p = params or DecouplingParams()
        self.whole = whole  # the whole run's accuracy, when known beforehand (diag.detect.hindsight)
        self.screen = screen and whole is None  # skip evaluations that provably hold nothing (diag.detect.screen)
        self.open: Finding | None = None  # the current falling episode, as last reported
        self.episodes: dict[int, int] = {}  # onset -> falling episodes seen from that peak
        self.stall: Finding | None = None
        self.stall_misses = 0
        self.collapse_hits = 0  # evaluations in a row showing a collapse while an episode is open

    def judge_all(self, a: Aligned, start: int) -> list[Finding]:
        """Events at every evaluation from `start` on, in order; the evaluations that provably hold no level
        below the best and no stall are found for all of them at once (diag.detect.screen) and skipped."""
        ks = range(start, len(a))
        fall, stall = screen.marks(a, self.p, ks) if self.screen else (None, None)
        return [f for i, k in enumerate(ks)
                for f in self.judge(a, k, fall is None or bool(fall[i]), stall is None or bool(stall[i]))]

    def judge(self, a: Aligned, k: int, fall: bool = True, stall: bool = True) -> list[Finding]:
        """Events at evaluation k, given evaluations 0..k (the last `history` of them are judged). `fall`,
        `stall` False: the screen showed the level test, the stall test, can give nothing at k."""
        if not (fall or stall or self.open is not None or self.stall is not None):
            return []
        lo = max(0, k + 1 - self.p.history)
        if lo:
            a, k = a.window(lo, k + 1), k - lo
        out = self._falling(a, k, fall)
        out += self._stall(a, k, stall)
        return out

    def _falling(self, a: Aligned, k: int, fall: bool = True) -> list[Finding]:
        p, step = self.p, int(a.steps[k])
        if self.open is not None:
            # once per evaluation: the collapse check and the escalation share it
            level = level_at(a, k, p, whole=self.whole) if fall else None
            gone = collapsed(a, k, level, p)
            self.collapse_hits = self.collapse_hits + 1 if gone else 0
            why = recovered(a, k, self.open, p, self.whole) or (gone if self.collapse_hits >= 2 else None)
            if why is not None:
                done, self.open, self.collapse_hits = _transient(self.open.resolve(step, why), a, k, p), None, 0
                return [done]
            if self.open.severity == "critical" or gone:
                return []
            crit = judge_level(a, k, level, p)
            if crit is None or crit.severity != "critical":
                return []
            self.open = replace(crit, step=self.open.step, onset=self.open.onset, episode=self.open.episode,
                                evidence={**crit.evidence, "first_alert_step": self.open.step, "critical_at": step})
            return [self.open]
        f = falling_at(a, k, p, whole=self.whole) if fall else None
        if f is None:
            return []
        if f.severity == "critical":  # critical only once a second evaluation confirms it (and shows no collapse)
            f = replace(f, severity="warning", message=f.message + CONFIRM.format(window=p.window))
        n = self.episodes[f.onset] = self.episodes.get(f.onset, 0) + 1
        self.open = replace(f, episode=n)
        return [self.open]

    def _stall(self, a: Aligned, k: int, may: bool = True) -> list[Finding]:
        stall = stall_at(a, k, self.p) if may else None
        if self.stall is not None:
            if stall is not None:
                self.stall_misses = 0
                if stall.severity == "warning" and self.stall.severity == "info":
                    self.stall = replace(stall, step=self.stall.step, onset=self.stall.onset)
                    return [self.stall]
                return []
            if still_carried(a, k, self.stall, self.p):
                self.stall_misses = 0  # the carrier still pays and accuracy has not caught up: it lasts
                return []
            self.stall_misses += 1
            if self.stall_misses >= self.p.stall_resolve:
                done, self.stall = self.stall.resolve(int(a.steps[k]), _stall_end(self.stall)), None
                return [done]
            return []
        if stall is None or (self.open is not None and stall.window_end >= self.open.window_start):
            return []
        self.stall, self.stall_misses = stall, 0
        return [stall]


def _stall_end(f: Finding) -> str:
    if f.evidence.get("carrier"):
        return (f"'{f.evidence['carrier']}' no longer carries the reward's rise, or held-out accuracy caught up")
    return "reward and held-out accuracy move together again"


def fold(events: list[Finding]) -> list[Finding]:
    """The final state of each alert id (the last event wins), in order of first detection."""
    last: dict[str, Finding] = {}
    for e in events:
        last[e.key] = e
    return sorted(last.values(), key=lambda f: (f.step, f.kind))


def detect_decoupling(a: Aligned, params: DecouplingParams | None = None, replay=None) -> list[Finding]:
    """Scan evaluations in order as a monitor would: one finding per episode, in its final state; an
    episode still firing also says where the level stands at the end of the run. With `replay`
    (diag.detect.replay.DecouplingReplay, kept by the caller between calls on a growing run), only the
    evaluations it has not judged are judged."""
    p = params or DecouplingParams()
    events = replay.events_for(a) if replay is not None and replay.p == p else DecouplingScanner(p).judge_all(a, 0)
    return [at_end(a, f, p) for f in fold(events)]


def at_end(a: Aligned, f: Finding, p: DecouplingParams, whole: np.ndarray | None = None) -> Finding:
    """A firing falling episode with the current level recomputed over the run's last evaluations (at
    most `window`, after its best block): the verdict at the end, not at detection time."""
    if f.kind != "decoupling" or not f.firing or not len(a):
        return f
    recent = a.window(max(0, len(a) - p.history), len(a))  # the history the scanner judged last
    if not set(f.evidence.get("peak_block", [])) <= set(recent.steps.tolist()):
        return f
    level = _level_since(recent, f, len(recent) - 1, p, whole)
    if level is None:
        return f
    now, d = level
    return replace(f, evidence={**f.evidence, "end_block": [int(recent.steps[i]) for i in now], "end_level": d.now,
                                "end_drop": d.drop, "end_se": d.se, "end_z": d.z})
