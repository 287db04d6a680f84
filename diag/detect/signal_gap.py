"""Signal gaps: a sustained share of all-fail groups, which give GRPO zero advantage.

A weak model fails every completion of most prompts; those groups teach nothing and RL stalls while
SFT on the same data would work. Reported separately: sustained all-pass ("saturated"), which is
normal on easy data late in training and is information, not an alarm.

The detector is a small state machine over the per-step shares (rolling mean over `window` steps,
with hysteresis), so the online monitor and the offline scan share one implementation and the
online cost per step is constant.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl

from diag.detect.base import Finding, no_data
from diag.summary import once_per_step


@dataclass(frozen=True)
class SignalGapParams:
    window: int = 20  # steps in the rolling mean
    all_fail_share: float = 0.6  # rolling all-fail share that counts as a signal gap
    critical_share: float = 0.85
    saturated_share: float = 0.6
    hysteresis: float = 0.1  # an episode ends when the rolling share drops this far below the threshold


@dataclass
class _Episode:
    start: int
    fired_at: int
    trigger: float = 0.0  # the rolling share that crossed the threshold: the number the message quotes
    values: list = field(default_factory=list)
    effective: list = field(default_factory=list)
    completions: list = field(default_factory=list)
    peak: float = 0.0  # highest rolling share during the episode: decides the severity
    last: float = math.nan  # the rolling share when the episode ended


class RollingShare:
    """Rolling mean of one share with episode tracking; `push` returns a finished or new episode. The
    offline replay (`episodes`) computes the same means for a whole run at once: both sum the window
    oldest first, so the two agree to the last bit and never on a different side of a threshold."""

    def __init__(self, window: int, threshold: float, hysteresis: float):
        self.window, self.threshold, self.hysteresis = window, threshold, hysteresis
        self.buf: deque = deque(maxlen=window)
        self.steps: deque = deque(maxlen=window)
        self.episode: _Episode | None = None

    def push(self, step: int, value: float, effective: float = math.nan, completions: float = math.nan) -> str | None:
        """'start' when an episode begins at this step, 'end' when one closes, else None."""
        if not math.isfinite(value):
            return None
        self.buf.append(value)
        self.steps.append(step)
        total = 0.0
        for v in self.buf:  # oldest first, as `window_means` adds them
            total += v
        mean = total / len(self.buf)
        if self.episode is not None:
            self.episode.peak = max(self.episode.peak, mean)
            self.episode.values.append(value)
            self.episode.effective.append(effective)
            self.episode.completions.append(completions)
            if mean < self.threshold - self.hysteresis:
                self.episode.last = mean
                return "end"
            return None
        if len(self.buf) == self.window and mean >= self.threshold:
            self.episode = _Episode(start=self.steps[0], fired_at=step, trigger=mean, values=list(self.buf), peak=mean)
            self.episode.effective.append(effective)
            self.episode.completions.append(completions)
            return "start"
        return None


def window_means(x: np.ndarray, window: int) -> np.ndarray:
    """The mean of each full window of `x` ending at index i (NaN for the first window - 1), summed oldest
    first as RollingShare.push sums it: one vector addition per position in the window, not per step."""
    out = np.full(len(x), np.nan)
    if len(x) < window:
        return out
    n = len(x) - window + 1
    total = np.zeros(n)
    for j in range(window):
        total = total + x[j:j + n]
    out[window - 1:] = total / window
    return out


def episodes(steps: np.ndarray, values: np.ndarray, window: int, threshold: float, hysteresis: float,
             effective: np.ndarray | None = None, completions: np.ndarray | None = None
             ) -> list[tuple[_Episode, int | None]]:
    """RollingShare replayed over a whole series: each episode with the step that ended it (None while it
    is still open at the end). Non-finite values are skipped, as push skips them; the loop runs once per
    episode, not once per step (a 100k-step run is a few milliseconds)."""
    keep = np.isfinite(values)
    st, x = np.asarray(steps)[keep], np.asarray(values, dtype=float)[keep]
    eff = (np.full(len(values), math.nan) if effective is None else np.asarray(effective, dtype=float))[keep]
    n = (np.full(len(values), math.nan) if completions is None else np.asarray(completions, dtype=float))[keep]
    mean = window_means(x, window)
    with np.errstate(invalid="ignore"):
        above, below = mean >= threshold, mean < threshold - hysteresis
    out, i = [], 0
    while True:
        starts = np.flatnonzero(above[i:])
        if not starts.size:
            return out
        a = i + int(starts[0])
        ends = np.flatnonzero(below[a + 1:])
        b = a + 1 + int(ends[0]) if ends.size else len(x) - 1
        ep = _Episode(start=int(st[a - window + 1]), fired_at=int(st[a]), trigger=float(mean[a]),
                      values=x[a - window + 1:b + 1].tolist(), effective=eff[a:b + 1].tolist(),
                      completions=n[a:b + 1].tolist(), peak=float(np.max(mean[a:b + 1])))
        if not ends.size:
            out.append((ep, None))
            return out
        ep.last = float(mean[b])
        out.append((ep, int(st[b])))
        i = b + 1


def _nanmean(x) -> float:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


ALL_FAIL_WORDS = "had no completion that passes the verifier"


def gap_finding(ep: _Episode, end_step: int, p: SignalGapParams, G: int | None, dead_2g: float | None,
                source: str = "frac_all_fail") -> Finding:
    # The quoted share is the rolling share that triggered the alert, and the episode's peak: never an
    # average that includes the steps that ended it (which can sit below the trigger).
    share, peak = ep.trigger, ep.peak
    eff, n = _nanmean(ep.effective), _nanmean(ep.completions)
    sev = "critical" if ep.peak >= p.critical_share else "warning"
    batch = f" (effective batch {eff:.0f} of {n:.0f} completions per step, from groups whose rewards differ for any reason, a format bonus included)" if math.isfinite(eff) and math.isfinite(n) else ""
    larger = ""
    if dead_2g is not None and G:
        larger = f" (predicted dead share at G={2 * G}: {100 * dead_2g:.0f}%)"
    caveat = "" if source == "frac_all_fail" else f" [estimated from {source}: {SOURCE_NOTE.get(source, source)}]"
    msg = (f"Signal gap: {100 * share:.0f}% of prompt groups {ALL_FAIL_WORDS} over the {p.window} steps to step "
           f"{ep.fired_at} (threshold {100 * p.all_fail_share:.0f}%; peak {100 * peak:.0f}%) in an episode from step "
           f"{ep.start} to {end_step}{batch}; their advantages are zero or reward only the other functions (e.g. a format bonus), so GRPO learns almost nothing of the task.{caveat} Remedies: warm-start "
           f"with SFT on this task, a larger group{larger}, or easier / pass-rate-filtered prompts.")
    return Finding(kind="signal_gap", severity=sev, step=ep.fired_at, onset=ep.start, window_start=ep.start,
                   window_end=end_step, message=msg,
                   evidence={"share_all_fail": share, "peak_share": peak, "effective_batch": eff, "completions_per_step": n,
                             "window": p.window, "threshold": p.all_fail_share, "source": source,
                             "dead_share_at_2G": dead_2g})


def resolved_gap(f: Finding, ep: _Episode, step: int, p: SignalGapParams, what: str = "all-fail") -> Finding:
    return f.resolve(step, f"the rolling {what} share fell to {100 * ep.last:.0f}% "
                           f"(below {100 * (ep_threshold(f, p) - p.hysteresis):.0f}%)")


def ep_threshold(f: Finding, p: SignalGapParams) -> float:
    return p.all_fail_share if f.kind == "signal_gap" else p.saturated_share


def saturated_finding(ep: _Episode, end_step: int, p: SignalGapParams) -> Finding:
    share = ep.trigger
    msg = (f"Saturated: {100 * share:.0f}% of prompt groups were all-pass over steps {ep.start}-{end_step}; "
           "they carry no gradient. Normal late in training on easy data; harder prompts would restore signal.")
    return Finding(kind="saturated", severity="info", step=ep.fired_at, onset=ep.start, window_start=ep.start,
                   window_end=end_step, message=msg, evidence={"share_all_pass": share, "window": p.window})


def dead_share_at(groups: pl.DataFrame, G_new: int) -> float | None:
    """Plug-in dead-group share at group size G_new from each group's pass rate: p^G + (1-p)^G."""
    if groups.height == 0 or "n_pass" not in groups.columns or groups["n_pass"].null_count() == groups.height:
        return None
    g = groups.filter((pl.col("mode") == "train") & pl.col("n_pass").is_not_null() & (pl.col("G") > 0))
    if g.height == 0:
        return None
    # each distinct (passes, group size) once, weighted by its count: millions of groups hold a few dozen
    c = g.group_by(["n_pass", "G"]).len()
    p = (c["n_pass"].cast(pl.Float64) / c["G"].cast(pl.Float64)).to_numpy()
    w = c["len"].cast(pl.Float64).to_numpy()
    return float(np.sum(w * (p**G_new + (1 - p) ** G_new)) / np.sum(w))


SOURCE_NOTE = {
    "frac_zero_signal": "the trainer's zero-std share, split into all-fail / all-pass by where the batch reward "
                        "sits in the reward range, assuming mixed groups average its middle",
}


def split_zero_signal(zero: np.ndarray, reward: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """(all-fail, all-pass) shares estimated from a zero-std share and the batch mean reward.

    With z of the groups tied, f_pass + f_fail = z, and the batch reward's position in the range
    x = (r - lo) / (hi - lo) ~ f_pass + (1 - z) / 2 when mixed groups average the middle of the range.
    So f_pass = clip(x - (1 - z) / 2, 0, z): a weak model (reward at the bottom) gives all-fail, a
    saturated one (at the top) all-pass, on any scale, signed ones included."""
    z = np.clip(np.asarray(zero, dtype=float), 0, 1)
    span = hi - lo
    x = (np.asarray(reward, dtype=float) - lo) / span if span > 0 else np.full(len(z), np.nan)
    f_pass = np.clip(x - (1 - z) / 2, 0, z)
    f_pass = np.where(np.isfinite(x) & np.isfinite(z), f_pass, np.nan)
    return z - f_pass, f_pass


def reward_range(steps: pl.DataFrame, given: tuple[float, float] | list | None = None) -> tuple[float, float, str] | None:
    """(lo, hi, source): the range given (config, declaration, --reward-range), else inferred and labelled."""
    if "reward_mean" not in steps.columns and given is None:
        return None
    r = steps["reward_mean"].cast(pl.Float64).to_numpy() if "reward_mean" in steps.columns else np.empty(0)
    r = r[np.isfinite(r)]
    return reward_range_of((float(r.min()), float(r.max())) if r.size else (math.inf, -math.inf), given)


def reward_range_of(seen: tuple[float, float], given: tuple[float, float] | list | None = None
                    ) -> tuple[float, float, str] | None:
    """The rule of reward_range on the (lowest, highest) batch reward seen: the given range when valid;
    0..1 when every reward seen lies there; else the observed min..max (None when they are one value)."""
    if given is not None:
        lo, hi = float(given[0]), float(given[1])
        if hi > lo:
            return lo, hi, "given"
    lo, hi = seen
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    if lo >= 0 and hi <= 1:
        return 0.0, 1.0, "inferred: every batch reward lies in 0..1"
    return (lo, hi, "inferred: the observed min..max of the batch reward") if hi > lo else None


def failing_share(row: dict) -> float:
    """The share a signal gap is judged on, one step: groups where no completion passes the verifier
    (frac_no_pass) where recorded, else the all-fail share. With a single pass/fail reward the two are
    equal; with a format or partial-credit reward beside the verifier, a group that fails the task can
    still be "mixed", and only the first counts it as a group without task signal."""
    v = row.get("frac_no_pass")
    if v is None or not math.isfinite(float(v)):
        v = row.get("frac_all_fail")
    return math.nan if v is None else float(v)


def _series(steps: pl.DataFrame, rng: tuple[float, float, str] | None) -> tuple[str, np.ndarray, np.ndarray | None] | None:
    """(source, all-fail share, all-pass share or None) from the best column the run has."""
    if "frac_all_fail" in steps.columns and steps["frac_all_fail"].null_count() < steps.height:
        fail = steps["frac_all_fail"].cast(pl.Float64).to_numpy()
        if "frac_no_pass" in steps.columns and steps["frac_no_pass"].null_count() < steps.height:
            no_pass = steps["frac_no_pass"].cast(pl.Float64).fill_null(np.nan).to_numpy()
            fail = np.where(np.isfinite(no_pass), no_pass, fail)  # failing_share, for every step at once
        has_pass = "frac_all_pass" in steps.columns and steps["frac_all_pass"].null_count() < steps.height
        return "frac_all_fail", fail, steps["frac_all_pass"].cast(pl.Float64).to_numpy() if has_pass else None
    if "frac_zero_signal" in steps.columns and steps["frac_zero_signal"].null_count() < steps.height and rng:
        reward = steps["reward_mean"].cast(pl.Float64).to_numpy()
        fail, ok = split_zero_signal(steps["frac_zero_signal"].cast(pl.Float64).to_numpy(), reward, rng[0], rng[1])
        return "frac_zero_signal", fail, ok
    return None


def detect_signal_gap(steps: pl.DataFrame, params: SignalGapParams | None = None,
                      groups: pl.DataFrame | None = None, group_size: int | None = None,
                      reward_range_given: tuple[float, float] | None = None) -> list[Finding]:
    """Offline: replay the per-step shares through the same state machine the monitor uses.

    Runs imported without group data fall back to the trainer's zero-std share, split into all-fail
    and all-pass by the reward's place in its range (given, or inferred and labelled as such)."""
    p = params or SignalGapParams()
    s = once_per_step(steps)
    rng = reward_range(s, reward_range_given) if s.height else None
    picked = _series(s, rng) if s.height else None
    if picked is None:
        last = int(s["step"].max()) if s.height and s["step"].max() is not None else 0
        return [no_data(last, "signal_gap",
                        "Not enough data to judge the learning signal: the run has neither per-group data nor a "
                        "zero-std share with a training reward. Record groups with diag.Recorder / DiagGRPOTrainer, "
                        "or import a log that carries frac_reward_zero_std (TRL) or by_group fractions (Tinker).")]
    source, share, passed = picked
    eff = s["effective_batch"].cast(pl.Float64).to_numpy() if "effective_batch" in s.columns else np.full(s.height, np.nan)
    n = s["n_completions"].cast(pl.Float64).to_numpy() if "n_completions" in s.columns else np.full(s.height, np.nan)
    step_ids = s["step"].to_numpy()
    dead_2g = dead_share_at(groups, 2 * group_size) if groups is not None and group_size else None
    # the window is in optimizer steps: logs written every k steps need window / k rows
    spacing = float(np.median(np.diff(step_ids))) if len(step_ids) > 1 else 1.0
    rows = max(3, math.ceil(p.window / max(spacing, 1.0)))
    out: list[Finding] = []

    def note(f: Finding) -> Finding:
        if source == "frac_all_fail" or rng is None:
            return f
        return replace(f, evidence={**f.evidence, "reward_range": [rng[0], rng[1]], "reward_range_source": rng[2]})

    last = int(step_ids[-1])
    for ep, end in episodes(step_ids, share, rows, p.all_fail_share, p.hysteresis, eff, n):
        f = gap_finding(ep, last if end is None else end, p, group_size, dead_2g, source)
        out.append(note(f if end is None else resolved_gap(f, ep, end, p)))
    if passed is not None:
        for ep, end in episodes(step_ids, passed, rows, p.saturated_share, p.hysteresis):
            f = saturated_finding(ep, last if end is None else end, p)
            out.append(f if end is None else resolved_gap(f, ep, end, p, "all-pass"))
    return sorted(out, key=lambda f: f.step)
