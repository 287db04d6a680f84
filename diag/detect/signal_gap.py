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
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from diag.detect.base import Finding


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
    values: list = field(default_factory=list)
    effective: list = field(default_factory=list)
    completions: list = field(default_factory=list)
    peak: float = 0.0  # highest rolling share during the episode: decides the severity


class RollingShare:
    """Rolling mean of one share with episode tracking; `push` returns a finished or new episode."""

    def __init__(self, window: int, threshold: float, hysteresis: float):
        self.window, self.threshold, self.hysteresis = window, threshold, hysteresis
        self.buf: deque = deque(maxlen=window)
        self.steps: deque = deque(maxlen=window)
        self.total = 0.0
        self.episode: _Episode | None = None

    def push(self, step: int, value: float, effective: float = math.nan, completions: float = math.nan) -> str | None:
        """'start' when an episode begins at this step, 'end' when one closes, else None."""
        if not math.isfinite(value):
            return None
        if len(self.buf) == self.window:
            self.total -= self.buf[0]
        self.buf.append(value)
        self.steps.append(step)
        self.total += value
        mean = self.total / len(self.buf)
        if self.episode is not None:
            self.episode.peak = max(self.episode.peak, mean)
            self.episode.values.append(value)
            self.episode.effective.append(effective)
            self.episode.completions.append(completions)
            if mean < self.threshold - self.hysteresis:
                return "end"
            return None
        if len(self.buf) == self.window and mean >= self.threshold:
            self.episode = _Episode(start=self.steps[0], fired_at=step, values=list(self.buf), peak=mean)
            self.episode.effective.append(effective)
            self.episode.completions.append(completions)
            return "start"
        return None


def _nanmean(x) -> float:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


def gap_finding(ep: _Episode, end_step: int, p: SignalGapParams, G: int | None, dead_2g: float | None,
                source: str = "frac_all_fail") -> Finding:
    share = _nanmean(ep.values)
    eff, n = _nanmean(ep.effective), _nanmean(ep.completions)
    sev = "critical" if ep.peak >= p.critical_share else "warning"
    batch = f" (effective batch {eff:.0f} of {n:.0f} completions per step)" if math.isfinite(eff) and math.isfinite(n) else ""
    larger = ""
    if dead_2g is not None and G:
        larger = f" (predicted dead share at G={2 * G}: {100 * dead_2g:.0f}%)"
    caveat = "" if source == "frac_all_fail" else f" [from {source}: all-fail and all-pass cannot be told apart]"
    msg = (f"Signal gap: {100 * share:.0f}% of prompt groups were all-fail over steps {ep.start}-{end_step}"
           f"{batch}; their advantages are zero, so GRPO learns from almost nothing.{caveat} Remedies: warm-start "
           f"with SFT on this task, a larger group{larger}, or easier / pass-rate-filtered prompts.")
    return Finding(kind="signal_gap", severity=sev, step=ep.fired_at, onset=ep.start, window_start=ep.start,
                   window_end=end_step, message=msg,
                   evidence={"share_all_fail": share, "effective_batch": eff, "completions_per_step": n,
                             "window": p.window, "threshold": p.all_fail_share, "source": source,
                             "dead_share_at_2G": dead_2g})


def saturated_finding(ep: _Episode, end_step: int, p: SignalGapParams) -> Finding:
    share = _nanmean(ep.values)
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
    p = (g["n_pass"] / g["G"]).to_numpy()
    return float(np.mean(p**G_new + (1 - p) ** G_new))


def _series(steps: pl.DataFrame) -> tuple[str, np.ndarray] | None:
    for col in ("frac_all_fail", "frac_zero_signal"):
        if col in steps.columns and steps[col].null_count() < steps.height:
            return col, steps[col].cast(pl.Float64).to_numpy()
    return None


def detect_signal_gap(steps: pl.DataFrame, params: SignalGapParams | None = None,
                      groups: pl.DataFrame | None = None, group_size: int | None = None,
                      reward_ceiling: float | None = None) -> list[Finding]:
    """Offline: replay the per-step shares through the same state machine the monitor uses.

    Runs imported without group data fall back to the trainer's zero-std share, counted as all-fail only
    where the reward sits in the bottom tenth of `reward_ceiling` (the weak-model signature)."""
    p = params or SignalGapParams()
    if steps.height == 0:
        return []
    s = steps.sort("step")
    picked = _series(s)
    if picked is None:
        return []
    source, share = picked
    if source != "frac_all_fail":
        reward = s["reward_mean"].cast(pl.Float64).to_numpy() if "reward_mean" in s.columns else np.full(s.height, np.nan)
        ceiling = reward_ceiling if reward_ceiling else float(np.nanmax(np.abs(reward))) if np.isfinite(reward).any() else 1.0
        share = np.where(np.isfinite(reward) & (reward <= 0.1 * ceiling), share, 0.0)
    eff = s["effective_batch"].cast(pl.Float64).to_numpy() if "effective_batch" in s.columns else np.full(s.height, np.nan)
    n = s["n_completions"].cast(pl.Float64).to_numpy() if "n_completions" in s.columns else np.full(s.height, np.nan)
    step_ids = s["step"].to_list()
    dead_2g = dead_share_at(groups, 2 * group_size) if groups is not None and group_size else None
    # the window is in optimizer steps: logs written every k steps need window / k rows
    spacing = float(np.median(np.diff(step_ids))) if len(step_ids) > 1 else 1.0
    rows = max(3, math.ceil(p.window / max(spacing, 1.0)))
    out: list[Finding] = []
    fail = RollingShare(rows, p.all_fail_share, p.hysteresis)
    for i, st in enumerate(step_ids):
        ev = fail.push(st, float(share[i]), float(eff[i]), float(n[i]))
        if ev == "end":
            out.append(gap_finding(fail.episode, st, p, group_size, dead_2g, source))
            fail.episode = None
    if fail.episode is not None:
        out.append(gap_finding(fail.episode, step_ids[-1], p, group_size, dead_2g, source))
    if "frac_all_pass" in s.columns and s["frac_all_pass"].null_count() < s.height:
        sat = RollingShare(rows, p.saturated_share, p.hysteresis)
        for st, v in zip(step_ids, s["frac_all_pass"].cast(pl.Float64).to_list()):
            if sat.push(st, v if v is not None else math.nan) == "end":
                out.append(saturated_finding(sat.episode, st, p))
                sat.episode = None
        if sat.episode is not None:
            out.append(saturated_finding(sat.episode, step_ids[-1], p))
    return sorted(out, key=lambda f: f.step)
