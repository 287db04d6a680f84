"""One collapse rule for both reward-truth detectors: did the training reward fall with the truth?

A fall of the truth (held-out accuracy, diag.detect.decoupling; the training completions' truth rate,
diag.detect.truth_gap) under a reward that holds is a deceptive reward; under a reward that fell alike
it is a collapse (the policy got worse and the reward says so). Both detectors ask the same question
with the same boundary, so they never disagree on which it is:

- shares of the level, not raw differences (rewards have any scale): the reward lost `share` of its
  level (from its reference down towards its floor), the truth lost `truth_share` of its own;
- alike: share >= RATIO x truth_share (the boundary);
- judged with the reward's noise: the reward's own standard error turns `share` into an interval. A
  reward that did not measurably fall (the interval reaches zero) held: decoupled from a truth that
  fell, on the point estimate below the boundary, as a reward that rose. A reward that measurably fell
  (a joint dip) is decoupled only with the interval wholly below the boundary (`apart`); a collapse
  needs it wholly above (`collapse`); in between it has not been told apart from a collapse yet: no
  decoupling is raised, and an open one is not withdrawn. A reward level from one step of eight
  completions (a real run whose best evaluation is its first) is wide and decides nothing: the
  reference takes at least MIN_REF_STEPS steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RATIO = 0.35  # the reward lost at least this times the truth's share of its level: fell alike
Z = 1.645  # one-sided 95%: the reward's share lost must clear the boundary by this many standard errors
MIN_REF_STEPS = 10  # a reward reference over fewer steps is extended forward (eight completions a step
# leave one step's mean within +-0.15 of the level; ten steps bring it to +-0.05)


@dataclass(frozen=True)
class RewardFall:
    share: float  # share of its level the reward lost (negative: it rose)
    se: float  # standard error of `share` (0 when the reward's noise is unknown: the point rule)
    truth_share: float  # share of its level the truth lost
    ratio: float = RATIO
    z: float = Z

    @property
    def boundary(self) -> float:
        return self.ratio * self.truth_share

    @property
    def alike(self) -> bool:
        """The point estimate at or above the boundary."""
        return self.truth_share > 0 and self.share >= self.boundary

    @property
    def fell(self) -> bool:
        """The reward measurably fell (beyond its noise)."""
        return self.share - self.z * self.se > 0

    @property
    def apart(self) -> bool:
        """Told apart from a collapse: below the boundary, and clearly so if the reward measurably fell."""
        if self.truth_share <= 0 or self.share >= self.boundary:
            return False
        return not self.fell or self.share + self.z * self.se < self.boundary

    @property
    def collapse(self) -> bool:
        """The reward clearly fell alike."""
        return self.truth_share > 0 and self.share - self.z * self.se >= self.boundary

    def words(self) -> str:
        """How the reward moved, for a finding's message."""
        if self.share < -0.02:
            return "rose"
        if self.share <= 0.02:
            return "held"
        return f"fell by only {100 * self.share:.0f}% of its level"


def reward_fall(ref: float, ref_se: float, now: float, now_se: float, floor: float, truth_share: float,
                ratio: float = RATIO, z: float = Z) -> RewardFall:
    """The rule on a reward reference and current level with their standard errors (NaN: unknown, 0)."""
    span = ref - floor
    share = (ref - now) / span if span > 0 else 0.0
    var = sum(s * s for s in (ref_se, now_se) if math.isfinite(s))
    se = math.sqrt(var) / span if span > 0 else 0.0
    return RewardFall(share, se, truth_share, ratio, z)


def floor(lowest: float, funcs: np.ndarray, reward: np.ndarray) -> float:
    """Where a reward's fall is measured towards, for both detectors: a signed reward (penalties) its lowest
    point; any other what it pays whatever a completion does (a bonus every completion earns is no level,
    diag.detect.carriers.fixed_pay_of on `funcs` [windows x functions] and `reward`, means over the same
    windows), 0 when nothing is paid regardless."""
    from diag.detect.carriers import fixed_pay_of  # lazy: carriers reads the aligned series, this module none

    return lowest if lowest < 0 else fixed_pay_of(funcs, reward)


def level(values: np.ndarray) -> tuple[float, float, int]:
    """(mean, standard error, count) of per-step rewards (NaN standard error from fewer than two)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not v.size:
        return math.nan, math.nan, 0
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size >= 2 else math.nan
    return float(v.mean()), se, int(v.size)
