"""The run's other held-out sets beside the one judged: how far each is one more piece of evidence.

A fall judged on one set (diag.detect.decoupling) is checked on the run's other sets at the same two blocks.
Sets of other items are independent evidence and combine; a second grading of the same completions (format,
a lenient score, pass@k of the same samples) is the same measurement and adds nothing; in between, the
correlation of their evaluation-to-evaluation changes says how much a set adds.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import special

from diag.detect.align import Aligned
from diag.detect.levels import LevelDrop, combined_z, deviation_correlation, level_drop

# evaluation-to-evaluation changes this correlated: the same completions graded again (format, a lenient score),
# one measurement however it is named, never a second held-out set
SAME_MEASUREMENT = 0.8


def corroborated(a: Aligned, d: LevelDrop | None, k: int) -> LevelDrop | None:
    """`d` with the run's other held-out sets judged on the same two blocks (each with its own noise). When
    their combined z is the larger, it replaces this set's: a 2-point fall on MATH-500 alone may be noise,
    the same fall on AIME and MMLU at the same checkpoints is not. Combined only as far as the sets are
    independent: Stouffer's sum under the correlation of their evaluation-to-evaluation changes, estimated
    over the run so far (too few changes to estimate it: not combined), so a second grading of the same
    completions adds next to nothing. Never smaller than this set's own z, so a set evaluated alone, or sets
    that disagree, leave the verdict as this set gives it."""
    if d is None or not a.companions:
        return d
    idx = d.best_idx + d.now_idx
    parts, series = [], [a.acc[: k + 1]]
    for name, (acc, n) in a.companions.items():
        if np.all(np.isfinite(acc[idx])):
            c = level_drop(acc[: k + 1], n, {}, d.best_idx, d.now_idx, k, selected=False)
            if c is not None:
                parts.append((name, c.drop, c.z))
                series.append(acc[: k + 1])
    if not parts:
        return d
    rho = deviation_correlation(series, cut=(d.best_idx[-1], d.now_idx[0]))
    if rho is None:  # too few changes to estimate it: sets of other items (regradings are left out by name,
        rho = np.full((len(series), len(series)), np.nan)  # SAME_COMPLETIONS) are taken as independent, said so
        np.fill_diagonal(rho, 1.0)
    rho_use = np.nan_to_num(rho, nan=0.0)
    keep = [0, *[i + 1 for i in range(len(parts)) if rho_use[0, i + 1] < SAME_MEASUREMENT]]  # no regrading
    parts, rho, rho_use = [parts[i - 1] for i in keep[1:]], rho[np.ix_(keep, keep)], rho_use[np.ix_(keep, keep)]
    if not parts:
        return d
    # a set whose noise moves with this one's shares the selection of the best block in proportion: its z is
    # lowered by that share of this set's selection bias (none for an independent set)
    lift = d.bias / d.se if d.se > 0 else 0.0
    parts = [(name, drop, z_i - float(rho_use[0, i + 1]) * lift) for i, (name, drop, z_i) in enumerate(parts)]
    z = combined_z([d.z] + [z for _, _, z in parts], rho_use)
    if not z > d.z:
        return d
    sets = tuple((name, drop, z_i, float(rho[0, i + 1])) for i, (name, drop, z_i) in enumerate(parts))
    return replace(d, z=z, p=float(special.ndtr(-z)), z_alone=d.z, sets=sets)
