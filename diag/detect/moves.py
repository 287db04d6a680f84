"""How the training reward moved between the two blocks held-out accuracy is judged on
(diag.detect.decoupling), put to the one collapse rule (diag.detect.collapse)."""

from __future__ import annotations

import math

import numpy as np

from diag.detect import collapse
from diag.detect.align import Aligned
from diag.detect.carriers import mean
from diag.detect.levels import LevelDrop, expected_max, spread_sigma


def reward_moves(a: Aligned, d: LevelDrop, k: int, collapse_ratio: float) -> dict | None:
    """How the training reward moved between the two blocks accuracy is judged on (None without a
    reward), judged by the one collapse rule (diag.detect.collapse): `alike` (the point estimate at or
    above the boundary), `apart` (clearly below it: a decoupling can be raised), `collapse` (clearly above,
    and by more than three standard errors of the reward's noise between evaluations: an open episode
    is withdrawn on it).

    The reward's reference is its own high point between the two blocks (over windows as wide as the
    best block): a reward that kept rising after accuracy's best and then fell with it has collapsed from
    where it stood. Its noise comes from the steps that produced each level; a best level of one
    evaluation takes at least collapse.MIN_REF_STEPS steps, the ones after it (a real run whose best
    evaluation is its first has one step of reward there, one of eight completions paid)."""
    r_best, r_now = mean(a.reward[d.best_idx]), mean(a.reward[d.now_idx])
    if not (math.isfinite(r_best) and math.isfinite(r_now)):
        return None
    w = len(d.best_idx)
    ref_steps = a.step_rewards(d.best_idx[0], d.best_idx[-1], collapse.MIN_REF_STEPS, before=d.now_idx[0])
    if len(ref_steps) > 0:
        r_best, best_se, _ = collapse.level(ref_steps)
    else:
        best_se = math.nan
    _, now_se, _ = collapse.level(a.step_rewards(d.now_idx[0], d.now_idx[-1]))
    sigma, _ = spread_sigma(a.reward[: k + 1])  # the reward's own noise between evaluations
    sigma = sigma if math.isfinite(sigma) else 0.0
    between = [r for r in (mean(a.reward[i:i + w]) for i in range(d.best_idx[0], d.now_idx[0] - w + 1))
               if math.isfinite(r)]
    # the highest of several noisy windows is biased up, as accuracy's best block is: corrected alike
    r_ref = max(r_best, max(between, default=r_best) - sigma / math.sqrt(w) * expected_max(len(between) // w + 1))
    floor = held_out_floor(a, k)
    rel_a = d.drop / d.best_corrected if d.best_corrected > 0 else 1.0
    fall = collapse.reward_fall(r_ref, best_se, r_now, now_se, floor, rel_a, ratio=collapse_ratio)
    noise = 3 * sigma * math.sqrt(1 / w + 1 / len(d.now_idx))
    return {"reward_before": r_best, "reward_high": r_ref, "reward_after": r_now, "reward_share_lost": fall.share,
            "reward_share_se": fall.se, "accuracy_share_lost": rel_a, "boundary": fall.boundary,
            "trend": "rose" if fall.share < -0.02 else "held" if fall.share <= 0.02 else "fell less",
            "alike": fall.alike, "apart": fall.apart, "collapse": fall.collapse and r_ref - r_now > noise}


def held_out_floor(a: Aligned, k: int) -> float:
    """collapse.floor on the evaluation windows 0..k: a signed reward (penalties) is measured from its lowest
    point; a bonus every completion earns is no level."""
    return collapse.floor(float(np.nanmin(a.reward[: k + 1])), a.funcs[: k + 1], a.reward[: k + 1])

