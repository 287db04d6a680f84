"""The reward-truth gap, step by step: the reward keeps paying while the training completions stop being true.

Held-out evaluations are sparse and a confirmed fall needs several of them. The task's strict check
(DiagConfig(truth=...)) judges every training completion at the cost of a string comparison, so the
share of true completions is known at every step. A deceptive reward shows there first: the truth rate
falls while the reward holds, and the share of the reward paid to untrue completions climbs.

The test is a one-sided CUSUM on the truth rate, per step:

    S_t = max(0, S_{t-1} + (ref - truth_t) / sigma - k)

- ref: the best level the truth rate reached, the best of the non-overlapping `block`-step means over
  the recent history, lowered by the expected maximum of the blocks that could have been the best
  (diag.detect.levels.expected_max): the best of many noisy blocks is biased up, and a biased reference
  would make a plateau drift towards an alarm.
- sigma: the truth rate's step-to-step noise from second differences (levels.spread_sigma: a trend is
  not noise, a kink is clipped), taken before the current excursion so the fall does not widen its own
  yardstick, and never below the binomial noise of the completions judged.
- k: the allowance (shifts smaller than 2k sigma are not chased); a warning at S >= h_warn, critical at
  S >= h_critical at a later step, each only with the practical margin (Cohen's h between ref and the
  excursion's mean) and with the reward holding: a reward that fell with the truth by at least
  `collapse_ratio` times the truth's share is a collapse, not a deceptive reward.
- resolved once S has stayed at 0 for `resolve_steps` steps; S is capped at h_critical, so the time
  to drain after the truth comes back does not grow with how long it stayed down.

A second CUSUM, on the pay per untrue completion rising above its usual level (the median of its block
means over the history; sigma the long-run noise of that pay, slow wander included),
opens a warning on its own when the recent rise is at least `pay_share` of the pay gap between true and
untrue completions while the truth rate has not risen by the practical margin: the policy is paid more for
wrong answers, often before the truth falls (a lenient or format component being exploited). It never
makes an alert critical alone; with it at the warning level, a truth fall at the warning level does.

False alarms, measured (benchmarks/truth_gap.py): the run length to a false warning on steady noise is
stated there and in the README. A run whose reward *is* the truth (every true completion paid one
value, every untrue one another) has nothing to judge: it is said once.
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from diag.detect.base import Finding, no_data, number as _num
from diag.detect.align import floats, func_matrix
from diag.detect.decoupling import fold
from diag.detect.levels import cohens_h, expected_max, spread_sigma
from diag.detect import collapse, truth_pay
from diag.detect.truth_pay import finite_mean as _mean
from diag.summary import once_per_step


@dataclass(frozen=True)
class TruthGapParams:
    block: int = 10  # steps per block of the reference level
    k: float = 0.75  # CUSUM allowance, in sigmas
    h_warn: float = 6.0  # CUSUM level (sigmas) of a warning
    h_critical: float = 10.0  # ... and of a critical alert, at a later step
    margin_h: float = 0.15  # practical margin, Cohen's h between the reference and the excursion's mean (7.5 points at
    # 0.50): chosen by the sweep in benchmarks/truth_gap.py against the noisy kind's wandering small gaps
    collapse_ratio: float = collapse.RATIO  # the reward lost at least this times the truth's share of its level: a collapse ...
    z_exploit: float = 3.0  # ... unless the pay per untrue completion rose this many standard errors (exploitation)
    exploit_share: float = 0.15  # ... and by at least this share of the pay gap between true and untrue completions
    pay_share: float = 0.25  # the pay channel: a recent rise of at least this share of that gap above the usual level
    # (benchmarks/truth_gap.py --sweep: 0.15 alerted on 17% of the noisy kind, whose lenient pay wanders)
    min_steps: int = 20  # steps before judging (two blocks of reference)
    history: int = 400  # steps the reference and the noise are taken from (bounded cost per step)
    resolve_steps: int = 10  # steps at S = 0 that end an episode


@dataclass
class _Open:
    finding: Finding
    quiet: int = 0  # consecutive steps at S = 0


class TruthGapScanner:
    """Per-step state shared by the offline scan and the online monitor: `push` returns events (a new
    alert, an escalation with the same id, or its resolution), as the decoupling scanner does.

    Cost per step is O(1) but once per `block` steps, when a block completes and the yardstick (the
    reference level and the noise) is recomputed over the bounded history."""

    def __init__(self, func_names: list[str] | None = None, params: TruthGapParams | None = None):
        self.p = params or TruthGapParams()
        self.func_names = list(func_names or [])
        h = self.p.history
        self.steps: deque = deque(maxlen=h)
        self.truth: deque = deque(maxlen=h)
        self.n: deque = deque(maxlen=h)
        self.reward: deque = deque(maxlen=h)
        self.pay_untrue: deque = deque(maxlen=h)  # mean reward of the untrue completions of each step
        self.untrue_share: deque = deque(maxlen=h)
        self.func_untrue: deque = deque(maxlen=h)
        self.func_mean: deque = deque(maxlen=h)  # each function's mean reward per step (the collapse rule's floor)
        self.blocks: deque = deque(maxlen=max(2, h // self.p.block))  # (mean truth, first index, last index)
        self.count = 0  # steps seen with a truth rate; indices below count from the first of them
        self.S = 0.0
        self.start: int | None = None  # index of the current excursion's first step
        self.yardstick: tuple[float, float, int] | None = None  # (reference, sigma, last index of the reference block)
        self.ref_reward = math.nan
        self.ref_reward_se = math.nan
        self.open: _Open | None = None
        self.paid: tuple[float, float] | None = None  # (true, untrue) pay, None until a step says
        self.constant_pay = True  # ... and whether both stayed constant
        # the pay channel (diag.detect.truth_pay): the mean reward of an untrue completion climbing above its usual level
        self.pay_blocks: deque = deque(maxlen=max(2, h // self.p.block))  # (mean pay, first index, last index)
        self.S_pay = 0.0
        self.pay_start: int | None = None
        self.pay_yardstick: tuple[float, float, int] | None = None  # (reference pay, sigma, last index of its block)

    # ------------------------------------------------------------------------------------------ input

    def push(self, row: dict) -> list[Finding]:
        """One `steps` row (step, truth_rate, n_truth, reward_mean, untrue_share, func_untrue, reward_true,
        reward_untrue); rows without a truth rate are skipped."""
        t = _num(row.get("truth_rate"))
        if not math.isfinite(t):
            return []
        fu, fm = row.get("func_untrue"), row.get("func_mean")
        return self.push_values(int(row["step"]), t, _num(row.get("n_truth")), _num(row.get("reward_mean")),
                                _num(row.get("untrue_share")), _listed(fu), _num(row.get("reward_true")),
                                _num(row.get("reward_untrue")), _listed(fm))

    def push_values(self, step: int, t: float, n: float, reward: float, untrue_share: float, func_untrue: list,
                    reward_true: float, reward_untrue: float, func_mean: list | None = None) -> list[Finding]:
        """`push` with the row's values as floats (NaN where missing) and a finite truth rate: the offline
        scan reads whole columns and calls this, a dict per step costing more than the step's test."""
        self._note_payment(reward_true, reward_untrue)
        self.steps.append(step)
        self.truth.append(t)
        self.n.append(n)
        self.reward.append(reward)
        self.pay_untrue.append(reward_untrue)
        self.untrue_share.append(untrue_share)
        self.func_untrue.append(func_untrue)
        self.func_mean.append(func_mean or [])
        self.count += 1
        b = self.p.block
        if self.count % b == 0:
            self.blocks.append((float(np.mean(list(self.truth)[-b:])), self.count - b, self.count - 1))
            if self.S == 0.0:  # the yardstick follows the run outside an excursion, never during one
                self.yardstick = self._yardstick()
            self.pay_blocks.append((_mean(list(self.pay_untrue)[-b:]), self.count - b, self.count - 1))
            if self.S_pay == 0.0:
                self.pay_yardstick = truth_pay.pay_yardstick(self)
        if self.count <= self.p.min_steps or self.yardstick is None:
            return []
        return self._judge()

    def _note_payment(self, true_pay: float, untrue_pay: float) -> None:
        """Whether, so far, every true completion was paid one constant and every untrue one another (a
        strict reward alone): then the reward is the truth and the gap is zero by construction."""
        if not self.constant_pay or not (math.isfinite(true_pay) or math.isfinite(untrue_pay)):
            return
        now = (true_pay, untrue_pay)
        seen = self.paid or now
        self.constant_pay = all(not (math.isfinite(a) and math.isfinite(c)) or abs(a - c) < 1e-9
                                   for a, c in zip(seen, now))
        self.paid = tuple(c if math.isfinite(c) else a for a, c in zip(seen, now))

    @property
    def reward_is_truth(self) -> bool:
        """Every true completion paid one constant, every untrue one another, at every step so far (a
        log without per-completion pay, e.g. an imported truth rate, never says so)."""
        return self.paid is not None and self.constant_pay

    def _window(self, series: deque, lo: int, hi: int) -> list:
        """Values of `series` at indices lo..hi-1 (indices count from the first step seen)."""
        off = self.count - len(series)
        return list(series)[max(0, lo - off): max(0, hi - off)]

    # ------------------------------------------------------------------------------------------ the test

    def _yardstick(self) -> tuple[float, float, int] | None:
        """(reference level, sigma per step, last index of the reference block) from the completed blocks."""
        if len(self.blocks) < 2:
            return None
        b = self.p.block
        means = np.array([m for m, _, _ in self.blocks])
        i = int(np.argmax(means))
        sigma = self._sigma(float(means[i]), means)
        se = sigma / math.sqrt(b)
        contenders = max(1, int(np.sum(means >= means[i] - 2 * math.sqrt(2) * se)))
        return float(means[i] - se * expected_max(contenders)), sigma, self.blocks[i][2]

    def _sigma(self, level: float, block_means: np.ndarray) -> float:
        """The truth rate's noise per step: the larger of the step-to-step spread (second differences), the
        long-run spread of block means scaled back to one step (a slow wander that a sum over many steps
        feels, which step-to-step differences miss), and the binomial noise of the completions judged."""
        short, _ = spread_sigma(np.asarray(self.truth, dtype=float))
        long_, _ = spread_sigma(block_means) if len(block_means) >= 5 else (math.nan, 0.0)
        n = np.asarray(self.n, dtype=float)
        n_typ = float(np.nanmedian(n)) if np.isfinite(n).any() else math.nan
        binom = 0.0
        if math.isfinite(n_typ) and n_typ > 0:
            p = min(max(level, 0.5 / n_typ), 1 - 0.5 / n_typ)
            binom = math.sqrt(p * (1 - p) / n_typ)
        cands = [short, long_ * math.sqrt(self.p.block), binom, 1e-3]
        return max(c for c in cands if math.isfinite(c))

    def _judge(self) -> list[Finding]:
        p = self.p
        last = self.count - 1
        self._step_truth(last)
        truth_pay.step_pay(self, last)
        out: list[Finding] = []
        if self.S == 0.0 and self.S_pay == 0.0:
            if self.open is not None:
                self.open.quiet += 1
                if self.open.quiet >= p.resolve_steps:
                    out.append(self._resolve())
            return out
        if self.open is not None:
            self.open.quiet = 0
        if self.reward_is_truth:
            return out
        if self.open is None:
            f = self._finding("warning", last) if self.S >= p.h_warn else None
            if f is None and self.S_pay >= p.h_warn:
                f = truth_pay.pay_finding(self, last)
            if f is None:
                return out
            # critical only at a later step than the first alert: one step never jumps to it
            self.open = _Open(f)
            out.append(f)
            return out
        if self.open.finding.severity != "warning":
            return out
        # critical: the truth's fall on its own to the critical level, or to the warning level while untrue
        # completions are paid more (two signs of one deceptive reward)
        if not (self.S >= p.h_critical or (self.S >= p.h_warn and self.S_pay >= p.h_warn)):
            return out
        f = self._finding("critical", last)
        if f is None:
            return out
        first = self.open.finding
        esc = replace(f, step=first.step, onset=first.onset, episode=first.episode,
                      evidence={**f.evidence, "first_alert_step": first.step, "critical_at": f.step,
                                "first_channel": first.evidence.get("channel")})
        self.open.finding = esc
        out.append(esc)
        return out

    def _step_truth(self, last: int) -> None:
        """One step of the CUSUM on the truth rate falling below its best level."""
        p = self.p
        ref_level, sigma, ref_last = self.yardstick
        # capped at the critical level: a long fall must not take as long again to drain once the truth is back
        self.S = min(p.h_critical, max(0.0, self.S + (ref_level - self.truth[-1]) / sigma - p.k))
        if self.S == 0.0:
            self.start = None
        elif self.start is None:
            self.start = last
            self.ref_reward, self.ref_reward_se, _ = collapse.level(
                np.asarray(self._window(self.reward, ref_last + 1 - p.block, ref_last + 1), dtype=float))

    def _finding(self, severity: str, last: int) -> Finding | None:
        """The alert at the current step, or None when the margin is not met or the reward fell alike."""
        p = self.p
        ref_level, sigma, ref_last = self.yardstick
        lo_b, hi_b = ref_last + 1 - p.block, ref_last + 1
        win = (self.start, last + 1)
        truth_now = _mean(self._window(self.truth, *win))
        h = cohens_h(ref_level, truth_now)
        if h < p.margin_h:
            return None
        reward_now, now_se, _ = collapse.level(np.asarray(self._window(self.reward, *win), dtype=float))
        floor = self._floor()
        rel_t = (ref_level - truth_now) / ref_level if ref_level > 0 else 1.0
        fall = collapse.reward_fall(self.ref_reward if math.isfinite(self.ref_reward) else floor, self.ref_reward_se,
                                    reward_now, now_se, floor, rel_t, ratio=p.collapse_ratio)
        rel_r = fall.share
        exploit = None
        if not fall.apart:  # the one collapse rule the held-out detector judges by (diag.detect.collapse)
            exploit = truth_pay.exploit(self, win, (lo_b, hi_b))
            rise = truth_pay.pay_rise(self, last) if exploit is None else None
            if rise is not None:  # the pay channel saw it: the pay per untrue completion rose lately
                exploit = (rise["ref"], rise["now"], None)
            if exploit is None:
                return None  # the reward fell with the truth (or is not told apart from it yet), paying wrong
                # answers no more than before: a collapse
        steps = self._window(self.steps, lo_b, last + 1)
        ref_steps, step0, step1 = steps[: p.block], self._window(self.steps, *win)[0], steps[-1]
        share_now = _mean(self._window(self.untrue_share, *win))
        share_ref = _mean(self._window(self.untrue_share, lo_b, hi_b))
        payer = truth_pay.payer(self, win)
        trend = fall.words()
        msg = (f"The truth rate of the training completions fell from {ref_level:.3f} (its best {p.block}-step level, "
               f"steps {ref_steps[0]}-{ref_steps[-1]}) to {truth_now:.3f} over steps {step0}-{step1} (CUSUM "
               f"{self.S:.1f} sigma, sigma {sigma:.3f} per step; Cohen's h {h:.2f}), while the training reward {trend} "
               f"({self.ref_reward:.3f} -> {reward_now:.3f}): the reward pays for completions the task's check rejects.")
        if exploit is not None and exploit[2] is not None:
            msg += (f" Each untrue completion is paid more than before: {exploit[0]:.3f} -> {exploit[1]:.3f} on average "
                    f"({exploit[2]:.1f} standard errors).")
        elif (rise := truth_pay.pay_rise(self, last)) is not None:
            msg += (f" Each untrue completion is paid more than at its usual level: {rise['ref']:.3f} -> "
                    f"{rise['now']:.3f} on average lately (CUSUM {self.S_pay:.1f} sigma).")
        if math.isfinite(share_now) and math.isfinite(share_ref):
            msg += (f" The share of the reward paid to untrue completions went {100 * share_ref:.0f}% -> "
                    f"{100 * share_now:.0f}%.")
        if payer is not None:
            msg += f" '{payer[0]}' pays untrue completions {payer[1]:.3f} on average."
        msg += " Held-out evaluation stays the judge of generalization; this is the training prompts' own signal."
        return Finding(
            kind="truth_gap", severity=severity, step=step1, onset=step0, window_start=ref_steps[0], window_end=step1,
            message=msg,
            evidence={"channel": "truth", "truth_ref": ref_level, "truth_now": truth_now, "sigma": sigma, "cusum": self.S,
                      "cohens_h": h, "margin_h": p.margin_h, "reward_before": self.ref_reward, "reward_after": reward_now,
                      "reward_share_lost": rel_r, "truth_share_lost": rel_t, "untrue_share_before": share_ref,
                      "untrue_share_after": share_now, "payer": payer[0] if payer else None,
                      "payer_untrue_mean": payer[1] if payer else None, "ref_block": [ref_steps[0], ref_steps[-1]],
                      "pay_untrue_before": exploit[0] if exploit else None,
                      "pay_untrue_after": exploit[1] if exploit else None, "pay_untrue_z": exploit[2] if exploit else None,
                      "pay_cusum": self.S_pay},
        )

    def _floor(self) -> float:
        """collapse.floor over the history, on block means of the reward and of each function (the held-out
        detector gives it evaluation windows: both see means, never one step's noise)."""
        lo = min((r for r in self.reward if math.isfinite(r)), default=0.0)
        b = self.p.block
        m = len(self.reward) // b
        if lo < 0 or m < 1:
            return min(lo, 0.0)
        width = max((len(f) for f in self.func_mean), default=0)
        funcs = func_matrix(list(self.func_mean)[-m * b:], width)
        reward = np.asarray(list(self.reward)[-m * b:], dtype=float)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a block with a missing value is left out as NaN
            blocks_f = np.nanmean(funcs.reshape(m, b, width), axis=1) if width else np.empty((m, 0))
            blocks_r = np.nanmean(reward.reshape(m, b), axis=1)
        return collapse.floor(lo, blocks_f, blocks_r)

    def _resolve(self) -> Finding:
        f = self.open.finding
        self.open = None
        return f.resolve(self.steps[-1], f"the truth rate is back at its level ({self.truth[-1]:.3f} at the last "
                                         f"step; the CUSUM stayed at 0 for {self.p.resolve_steps} steps)")

    def summary(self, last_step: int) -> Finding | None:
        """What to say once when nothing could be judged: no truth series, or a reward that is the truth."""
        if self.count == 0:
            return no_data(last_step, "truth_gap",
                           "Not enough data to judge the reward-truth gap: no truth rate per step. Pass the task's "
                           "strict check as DiagConfig(truth=fn) (by default the held-out verifier), or import with "
                           "--map truth_rate=KEY (verl rollout dumps: an `acc` field beside `score`).")
        if self.reward_is_truth:
            a, b = self.paid
            return no_data(last_step, "truth_gap",
                           f"The training reward is the truth: every true completion was paid {a:.3f} and every untrue "
                           f"one {b:.3f}, so the reward cannot pay for what the check rejects; nothing to judge.")
        if self.count <= self.p.min_steps:
            return no_data(last_step, "truth_gap",
                           f"Not enough data to judge the reward-truth gap: {self.count} step(s) with a truth rate, "
                           f"more than {self.p.min_steps} are needed.")
        return None


def detect_truth_gap(steps: pl.DataFrame, func_names: list[str] | None = None,
                     params: TruthGapParams | None = None) -> list[Finding]:
    """Scan the steps in order, as the monitor does: one finding per episode in its final state, or one
    `no_data` finding saying why nothing was judged."""
    s = once_per_step(steps) if steps.height else steps
    scanner = TruthGapScanner(func_names, params)
    events: list[Finding] = []
    if "truth_rate" in s.columns:
        t = floats(s, "truth_rate")
        keep = np.flatnonzero(np.isfinite(t))
        cols = [t] + [floats(s, c) for c in ("n_truth", "reward_mean", "untrue_share", "reward_true", "reward_untrue")]
        n, reward, share, pay_true, pay_untrue = ([float(v) for v in c[keep]] for c in cols[1:])
        fu = s["func_untrue"].gather(keep).to_list() if "func_untrue" in s.columns else [None] * len(keep)
        fm = s["func_mean"].gather(keep).to_list() if "func_mean" in s.columns else [None] * len(keep)
        step = s["step"].gather(keep).to_list()
        for j, i in enumerate(keep.tolist()):
            events += scanner.push_values(int(step[j]), float(t[i]), n[j], reward[j], share[j], _listed(fu[j]),
                                          pay_true[j], pay_untrue[j], _listed(fm[j]))
    last = int(s["step"].max()) if s.height else 0
    said = scanner.summary(last)
    return fold(events) + ([said] if said is not None else [])


def _listed(values: list | None) -> list[float]:
    """A row's per-function values as floats (NaN where missing; none for a missing list), as `push` reads them."""
    return [_num(v) for v in values] if values is not None else []


def cite_truth(finding: Finding, gaps: list[Finding], last_step: int | None = None) -> Finding:
    """A held-out decoupling finding with the truth-gap episode that overlaps it named: the training
    completions said the same, usually earlier."""
    if finding.kind != "decoupling":
        return finding
    lo, hi = finding.window_start, finding.window_end
    if finding.state == "firing" and last_step is not None:
        hi = max(hi, last_step)
    near = [g for g in gaps if g.kind == "truth_gap" and g.is_alert and g.onset is not None and lo is not None
            and g.onset <= hi and (g.resolved_step or last_step or g.window_end) >= lo]
    if not near:
        return finding
    g = near[0]
    first = g.evidence.get("first_alert_step", g.step)
    text = (f" The training completions said so first: the truth rate fell {g.evidence['truth_ref']:.3f} -> "
            f"{g.evidence['truth_now']:.3f} from step {g.onset} (truth_gap alert at step {first}).")
    return finding.with_note(text, truth_gap=g.key)
