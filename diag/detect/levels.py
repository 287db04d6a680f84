"""Accuracy levels from sparse, noisy evaluations: the best level a run reached and where it is now.

A verdict keyed to one evaluation opens and closes an alert every few evaluations on a noisy run, and
the single best evaluation of a noisy series is biased upward (it is the maximum of many draws). So a
level is the mean of a block of consecutive evaluations, with its uncertainty, and the best block is
corrected for having been picked as the best:

- noise: the sampling noise (per-item results, paired across the two blocks; else p(1-p)/n from eval
  sizes) unless the spread between consecutive evaluations is larger than sampling would make it (checkpoint-to-
  checkpoint variation that no eval size shows: greedy decoding on the same items still moves by a
  point or two); then the spread, on a t reference with as many degrees of freedom as differences.
  With neither known the level cannot be judged.
- selection bias: the best block is lowered by the expected maximum of m standard normals times its
  standard error, m being the blocks that could have been the best (within two standard errors of it).
  A sharp peak has one contender and no correction; a long plateau has many.
- size: Cohen's h, 2 asin(sqrt p1) - 2 asin(sqrt p2), the variance-stabilised difference of two
  proportions, so one practical margin means the same at 0.10, 0.50 and 0.90 accuracy and on 32 or
  5,000 items (h 0.05 is 2.5 points at 0.50, 1.5 points at 0.10 or 0.90).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import special

CALIBRATED = 200  # second differences simulated at most; longer histories scale from there
MIN_SPREAD_DOF = 3.0  # a spread estimate worth fewer degrees of freedom does not overrule known sampling noise
SPREAD_ALPHA = 0.5  # the spread overrules sampling noise once it exceeds the median a sampling-only spread would have
PAIRED = "per-item results (paired)"
SIZES = "eval sizes"
SPREAD = "spread between evaluations"


@lru_cache(maxsize=256)
def expected_max(m: int) -> float:
    """E[max of m independent standard normals] (0 for m = 1)."""
    if m <= 1:
        return 0.0
    x = np.linspace(-8.0, 8.0, 8001)
    dens = m * np.exp(-x * x / 2) / math.sqrt(2 * math.pi) * special.ndtr(x) ** (m - 1)  # the normal's pdf, cdf
    return float(np.sum(x * dens) * (x[1] - x[0]))


def cohens_h(p1: float, p2: float) -> float:
    """2 asin(sqrt p1) - 2 asin(sqrt p2): positive when p1 is the higher accuracy."""
    c = lambda p: 2 * math.asin(math.sqrt(min(1.0, max(0.0, p))))  # noqa: E731
    return c(p1) - c(p2)


def _d2_rms(d2: np.ndarray) -> np.ndarray:
    """sqrt(mean squared second difference / 6) after clipping at 3 sigma, along the last axis.

    Clipping starts from the median-based scale and repeats: kinks where a run turns, drops or recovers
    are far outside the noise and are dropped however many there are, while independent noise loses
    0.3% of its values (the simulated calibration accounts for it)."""
    sq = np.sort(np.atleast_2d(d2) ** 2, axis=-1)
    m = sq.shape[-1]
    scale = (sq[:, (m - 1) // 2] + sq[:, m // 2]) / 2 / 0.4549  # the median over that of chi-square(1)
    for _ in range(3):
        keep = sq <= 9 * np.maximum(scale, 1e-18)[:, None]
        scale = (sq * keep).sum(axis=-1) / np.maximum(keep.sum(axis=-1), 1)
    out = np.sqrt(scale / 6)
    return out if np.ndim(d2) > 1 else out[0]


@lru_cache(maxsize=256)
def _d2_calibration(m: int) -> tuple[float, float]:
    """(mean of the estimate over the true sigma, degrees of freedom it is worth) for m second
    differences, simulated once on independent normal noise (fixed seed); read from the table of those
    simulations (diag.detect.d2_table, written by `python -m diag.detect.levels`; tests/test_levels.py
    simulates them again) for m up to CALIBRATED: simulating the sixty a check meets took 0.3 s."""
    from diag.detect.d2_table import TABLE  # lazy: generated from this module

    return TABLE[m] if m in TABLE else simulate_d2_calibration(m)


def simulate_d2_calibration(m: int) -> tuple[float, float]:
    """_d2_calibration by simulation: 4,000 series of m + 2 standard normals (seed 12345)."""
    x = np.random.default_rng(12345).normal(size=(4000, m + 2))
    est = _d2_rms(x[:, 2:] - 2 * x[:, 1:-1] + x[:, :-2])
    mean, rel = float(est.mean()), float(est.std() / est.mean())
    return mean, max(1.0, 1 / (2 * rel ** 2))


def spread_sigma(acc: np.ndarray, cut: int | tuple[int, ...] | None = None) -> tuple[float, float]:
    """One evaluation's noise around the trend, and the degrees of freedom it is worth, from second
    differences y[i+1] - 2 y[i] + y[i-1] (variance 6 sigma^2 for independent noise): a locally straight
    trend, rising or falling, cancels out, and the kinks where a run turns, drops or recovers are clipped
    out, so neither is taken for noise. With `cut` (one index or several), no second difference spans a
    cut: the step between a best level and a current level under test is the effect being measured,
    not noise. Corrected for its bias and given its degrees of freedom by simulation on white noise.
    NaN with fewer than 3 second differences."""
    y = np.asarray(acc, dtype=float)
    edges = [0, *sorted({c for c in ((cut,) if isinstance(cut, int) else cut or ()) if 0 < c < len(y)}), len(y)]
    parts = [y[lo:hi] for lo, hi in zip(edges, edges[1:])]
    d2 = [p[2:] - 2 * p[1:-1] + p[:-2] for p in (q[np.isfinite(q)] for q in parts) if len(p) >= 3]
    d2 = np.concatenate(d2) if d2 else np.empty(0)
    if len(d2) < 3:
        return math.nan, 0.0
    m = len(d2)
    bias, dof = _d2_calibration(min(m, CALIBRATED))
    return float(_d2_rms(d2)) / bias, dof * max(1.0, m / CALIBRATED)  # beyond it the bias is flat, dof linear


@dataclass(frozen=True)
class LevelDrop:
    best: float  # mean accuracy over the best block, as measured
    best_corrected: float  # lowered by the expected selection bias
    now: float  # mean accuracy over the current block
    best_idx: list[int]
    now_idx: list[int]
    bias: float
    contenders: int
    se: float  # standard error of best_corrected - now
    z: float  # the one-sided p as a normal quantile (a t on few differences is worth less than its value)
    p: float  # one-sided p that the current level is below the best
    h: float  # Cohen's h, corrected best vs now
    noise: str  # which noise set the standard error
    z_alone: float | None = None  # this set's own z, where other held-out sets raised it (z is then combined)
    sets: tuple = ()  # (name, drop, z) of each other held-out set judged on the same blocks

    @property
    def drop(self) -> float:
        return self.best_corrected - self.now


def block_means(acc: np.ndarray, width: int) -> np.ndarray:
    """Mean of every `width` consecutive values (NaN where one of them is missing), in one pass."""
    ok = np.isfinite(acc)
    sums = np.convolve(np.where(ok, acc, 0.0), np.ones(width), mode="valid")
    full = np.convolve(ok.astype(float), np.ones(width), mode="valid") == width
    return np.where(full, sums / width, np.nan)


def best_block(acc: np.ndarray, before: int, width: int, means: np.ndarray | None = None) -> list[int] | None:
    """Indices of the `width` consecutive evaluations before index `before` with the highest mean
    (`means`: block_means(acc[:before], width) when the caller has it)."""
    if width < 1 or before < width:
        return None
    means = block_means(np.asarray(acc[:before], dtype=float), width) if means is None else means
    if not np.isfinite(means).any():
        return None
    i = int(np.nanargmax(means))
    return list(range(i, i + width))


def _sampling_se(acc, n, items, best_idx, now_idx) -> tuple[float, str | None]:
    """Standard error of mean(acc[best]) - mean(acc[now]) from sampling alone."""
    keys = best_idx + now_idx
    if all(i in items for i in keys) and len({len(items[i]) for i in keys}) == 1:
        b = np.mean([items[i] for i in best_idx], axis=0)
        a = np.mean([items[i] for i in now_idx], axis=0)
        d = b.astype(float) - a.astype(float)
        if len(d) >= 2:
            return float(d.std(ddof=1) / math.sqrt(len(d))), PAIRED
    nn = np.asarray(n, dtype=float)[keys]
    if np.all(np.isfinite(nn)) and np.all(nn >= 1):
        p = np.clip(np.asarray(acc, dtype=float)[keys], 0.0, 1.0)
        var = p * (1 - p) / nn
        wb = len(best_idx)
        return float(math.sqrt(var[:wb].sum() / wb ** 2 + var[wb:].sum() / len(now_idx) ** 2)), SIZES
    return math.nan, None


def _sampling_explains(se_sampling: float, se_spread: float, dof: int) -> bool:
    """Whether the spread between evaluations is within what sampling alone would typically give (below
    the median of the chi-square on `dof` degrees of freedom): then the exact sampling noise is used;
    above it, checkpoints vary more than sampling and the spread is used. The median, not a 5% test: a
    test that lets checkpoint noise through until it is certain made 5% of healthy noisy runs alarm."""
    if se_spread <= se_sampling:
        return True
    return se_sampling > 0 and (se_spread / se_sampling) ** 2 * dof < special.chdtri(dof, SPREAD_ALPHA)


def level_drop(acc: np.ndarray, n: np.ndarray, items: dict[int, np.ndarray], best_idx: list[int],
               now_idx: list[int], upto: int, selected: bool = True,
               spread: tuple[float, float] | None = None, means: np.ndarray | None = None) -> LevelDrop | None:
    """How far the level over `now_idx` sits below the level over `best_idx`, with evaluations 0..upto
    known (the spread and the selection correction use only those). None without any noise estimate.
    `selected=False`: the blocks were chosen on another series (a companion held-out set judged on the
    primary set's blocks), so this one's best block was not picked as its maximum: no correction.
    `spread`: spread_sigma(acc[:upto + 1], cut=min(now_idx)) when the caller already has it; `means`:
    block_means(acc[:min(now_idx)], len(best_idx)) likewise (a detector judges many widths per evaluation)."""
    acc = np.asarray(acc, dtype=float)
    known = acc[: upto + 1]
    wb, wn = len(best_idx), len(now_idx)
    se_s, src = _sampling_se(acc, n, items, best_idx, now_idx)
    sigma, ndiff = spread if spread is not None else spread_sigma(known, cut=min(now_idx))
    se_spread = sigma * math.sqrt(1 / wb + 1 / wn) if math.isfinite(sigma) else math.nan
    # one evaluation alone is judged against the larger of the two: checkpoint noise hides in a single draw
    single = wn == 1 and math.isfinite(se_spread) and ndiff >= MIN_SPREAD_DOF
    if math.isfinite(se_s) and (not math.isfinite(se_spread) or ndiff < MIN_SPREAD_DOF
                                or (se_s >= se_spread if single else _sampling_explains(se_s, se_spread, ndiff))):
        se, noise, dof = se_s, src, math.inf
    elif math.isfinite(se_spread):
        se, noise, dof = se_spread, SPREAD, float(max(ndiff, 1.0))
    else:
        return None
    se = max(se, 1e-9)
    best, now = float(np.mean(acc[best_idx])), float(np.mean(acc[now_idx]))
    # selection: the blocks (non-overlapping, before the current one) that could have been the best
    se_block = se * math.sqrt(wn / (wb + wn))
    means = block_means(known[: min(now_idx)], wb) if means is None else means
    tiles = means[::wb]  # non-overlapping blocks before the current level
    contenders = max(1, int(np.sum(tiles >= best - 2 * math.sqrt(2) * se_block))) if selected else 1
    bias = se_block * expected_max(contenders)
    best_c = best - bias
    t = (best_c - now) / se
    # scipy.special's distribution functions: the detector calls these at every evaluation and width
    p = float(special.ndtr(-t) if math.isinf(dof) else special.stdtr(dof, -t))
    z = float(-special.ndtri(max(p, 1e-300)))  # on the normal scale, so few evaluations' spread counts for less
    return LevelDrop(best, best_c, now, list(best_idx), list(now_idx), bias, contenders, se, float(z), p,
                     cohens_h(best_c, now), noise)


def current_drop(acc: np.ndarray, n: np.ndarray, items: dict[int, np.ndarray], k: int, width: int,
                 best_width: int, spread: tuple[float, float] | None = None,
                 means: np.ndarray | None = None, lone_min_now: int | None = None) -> LevelDrop | None:
    """The last `width` evaluations up to k against the best block of `best_width` (at least 2) before them
    (`means`: the block means of that width before them, when the caller has them). `lone_min_now`: the
    run's first evaluation alone may be the best level against a current level of at least that many
    evaluations, all the rest of the run, when its noise is known from sampling (sizes or per-item
    results): a run whose best checkpoint is its first has no block to average, and a fall sustained
    over every evaluation since is a level however short the best."""
    acc = np.asarray(acc, dtype=float)
    now_idx = list(range(k - width + 1, k + 1))
    lone = now_idx[0] == 1 and lone_min_now is not None and width >= lone_min_now
    if (now_idx[0] < 2 and not lone) or not np.all(np.isfinite(acc[now_idx])):
        return None  # otherwise a best "level" of one evaluation is one draw, however it compares
    width_b = min(best_width, now_idx[0])
    if means is not None and len(means) != now_idx[0] - width_b + 1:
        means = None  # not this width's
    best = best_block(acc, now_idx[0], width_b, means)
    if best is None:
        return None
    d = level_drop(acc, n, items, best, now_idx, k, spread=spread, means=means)
    return None if lone and d is not None and d.noise == SPREAD else d


def combined_z(zs: list[float], rho: np.ndarray | None = None) -> float:
    """Stouffer's combination of one-sided z's from held-out sets: sum / sqrt(1' R 1), R their correlation
    (the identity, sum / sqrt(count), for independent sets). Each set's evidence keeps its own noise; a set
    that rose counts against the fall; correlated sets (one grading of the same completions) add little."""
    if not zs:
        return math.nan
    total = float(len(zs)) if rho is None else float(np.sum(rho))
    return float(sum(zs) / math.sqrt(total))


MIN_DEVIATIONS = 4  # evaluation-to-evaluation changes needed to estimate how two sets' noise moves together


def deviation_correlation(series: list[np.ndarray], cut: tuple[int, int] | None = None) -> np.ndarray | None:
    """How the sets' evaluation-to-evaluation changes correlate over the evaluations all of them have (first
    differences), without the changes from evaluation cut[0] to cut[1] (the fall under test: the effect every
    set shares, not noise): the shared wobble left (the same completions graded twice) is what makes it
    high. Negative estimates count as 0 (independent); None with fewer than MIN_DEVIATIONS changes: too
    uncertain to combine."""
    x = np.vstack(series)
    d = np.diff(x, axis=1)
    ok = np.all(np.isfinite(d), axis=0)
    if cut is not None:
        ok[cut[0]:cut[1]] = False  # d[i] spans evaluations i..i+1
    d = d[:, ok]
    if d.shape[1] < MIN_DEVIATIONS or np.any(np.ptp(d, axis=1) == 0):
        return None
    return np.clip(np.nan_to_num(np.corrcoef(d), nan=0.0), 0.0, 1.0)


def write_d2_table(path: str) -> None:
    """Write diag/detect/d2_table.py: the simulated calibration for 1..CALIBRATED second differences."""
    rows = "".join(f"    {m}: {simulate_d2_calibration(m)!r},\n" for m in range(1, CALIBRATED + 1))
    with open(path, "w") as f:
        f.write('"""The spread estimate\'s calibration by number of second differences: (mean over the true sigma,\n'
                "degrees of freedom), as diag.detect.levels.simulate_d2_calibration gives them. Generated by\n"
                "`python -m diag.detect.levels`; tests/test_levels.py checks it against the simulation.\"\"\"\n\n"
                f"TABLE = {{\n{rows}}}\n")


if __name__ == "__main__":
    import os

    write_d2_table(os.path.join(os.path.dirname(os.path.abspath(__file__)), "d2_table.py"))
