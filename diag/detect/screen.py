"""Which evaluations of a long run can hold a decoupling finding: one vectorised pass over all of them.

The decoupling scan (diag.detect.decoupling) judges each evaluation against the best block among the
last `history` ones, at every width of the current level: done evaluation by evaluation in Python, a run
with 10,000 evaluations took tens of seconds, though on a healthy run next to none of them comes close.
This pass computes, for every evaluation at once, an upper bound on the z any width could reach:

- the best block's raw mean (its selection correction only lowers it) over the current level's mean,
- divided by the smaller of the two standard errors the test may choose between (sampling: per-item
  results paired, else eval sizes; the spread between evaluations, the same clipped second differences),
  and a t's p only lowers a z read on the normal scale,

with block means, windows and the spread's second differences as strided views (numpy), the paired
item differences from cumulative sums. Where the bound clears neither the margin nor the threshold, the
scan's own test cannot either, and the evaluation is skipped; everywhere else (the bound allows a
finding, a window with a missing value, other held-out sets that may corroborate it, items whose length
differs from the run's usual one, the first `history` evaluations) the scan judges it exactly as before.
So the findings are the scan's own (tests/test_screen.py compares them with an unscreened scan), at a
cost linear in the evaluations. The stall test is screened alike: its two Theil-Sen medians (the
training reward's rise, held-out accuracy's) are necessary conditions computed for every window at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view as windows

from diag.detect.align import Aligned
from scipy import special

from diag.detect.levels import (CALIBRATED, MIN_SPREAD_DOF, SPREAD_ALPHA, _d2_calibration, _d2_rms, block_means,
                                expected_max)

if TYPE_CHECKING:
    from diag.detect.decoupling import DecouplingParams

SLACK = 1e-6  # relative room for the last bits the vectorised sums round differently from the scan's
CHUNK = 2048  # evaluations per pass over per-item differences (memory: CHUNK x items floats)


def marks(a: Aligned, p: DecouplingParams, ks: range) -> tuple[np.ndarray, np.ndarray]:
    """(fall, stall): for each k in `ks`, whether the scan's level test (level_at) and its stall test
    (stall_at) at evaluation k can give anything. False only where they provably give None."""
    ks = np.arange(ks.start, ks.stop, dtype=int)
    return _falls(a, p, ks), _stalls(a, p, ks)


def _h(p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    """Cohen's h, as diag.detect.levels.cohens_h, element-wise."""
    c = lambda x: 2 * np.arcsin(np.sqrt(np.clip(x, 0.0, 1.0)))  # noqa: E731
    return c(p1) - c(p2)


def _falls(a: Aligned, p: DecouplingParams, ks: np.ndarray) -> np.ndarray:
    out = np.ones(len(ks), bool)
    H = p.history
    acc = np.asarray(a.acc, dtype=float)
    full = ks >= H - 1  # the window is the last H evaluations; earlier ones are few: judged exactly
    if a.companions or not full.any() or len(acc) < H or H < p.max_window + max(p.window, p.best_max_width) + 3:
        return out
    bad = np.concatenate([[0], np.cumsum(~np.isfinite(acc))])
    k = ks[full]
    lo = k - H + 1
    clean = bad[k + 1] - bad[lo] == 0
    k, lo = k[clean], lo[clean]
    possible = np.zeros(len(k), bool)
    run = _Series(a, acc)
    for c0 in range(0, len(k), CHUNK):
        sl = slice(c0, c0 + CHUNK)
        possible[sl] = _falls_chunk(p, run, k[sl], lo[sl])
    idx = np.flatnonzero(full)[clean]
    out[idx] = possible
    return out


class _Series:
    """The whole run's arrays the bound reads, each window statistic computed once per width (not once per
    chunk of evaluations, current width and best width)."""

    def __init__(self, a: Aligned, acc: np.ndarray):
        self.acc = acc
        self.d2 = acc[2:] - 2 * acc[1:-1] + acc[:-2]  # d2[j]: the second difference centred on evaluation j + 1
        self.items = _ItemSums(a)
        self.n_ok = (np.isfinite(a.n) & (a.n >= 1)).astype(int)
        q = np.clip(acc, 0.0, 1.0)
        self.var = q * (1 - q) / np.where(self.n_ok > 0, a.n, 1.0)
        self._memo: dict = {}

    def window(self, what: str, width: int) -> np.ndarray:
        """`what` over every `width` consecutive evaluations: mean / max of accuracy, block means (NaN-aware),
        min / max item count, min of 'eval size known', sum of sampling variance."""
        key = (what, width)
        if key not in self._memo:
            series = {"mean": self.acc, "max": self.acc, "lmin": self.items.length, "lmax": self.items.length,
                      "nmin": self.n_ok, "var": self.var}
            if what == "block":
                self._memo[key] = block_means(self.acc, width)
            else:
                op = {"mean": "mean", "max": "max", "lmin": "min", "lmax": "max", "nmin": "min", "var": "sum"}[what]
                self._memo[key] = getattr(windows(series[what], width), op)(axis=1)
        return self._memo[key]


def _falls_chunk(p: DecouplingParams, run: _Series, k: np.ndarray, lo: np.ndarray) -> np.ndarray:
    H = p.history
    possible = np.zeros(len(k), bool)
    for w in range(1, p.max_window + 1):
        now = run.window("mean", w)[k - w + 1]
        before_max = run.window("max", H - w)[lo]
        open1 = _h(before_max, now) >= p.margin_h
        if not open1.any():
            continue
        sigma, dof = _spread(run.d2, k, lo, w, H)
        thr = p.z_warn if w > 1 else p.z_single
        for wb in range(p.window, max(p.window, p.best_max_width) + 1):
            cand = windows(run.window("block", wb), H - w - wb + 1)[lo]
            j = lo + np.argmax(cand, axis=1)  # the scan's best block: the first of the highest
            best = cand.max(axis=1)
            gate = open1 & (_h(best, now) >= p.margin_h)
            if not gate.any():
                continue
            se_spread = sigma * np.sqrt(1 / wb + 1 / w)
            se_s, unsure = _sampling_se(run, j, wb, k, w)
            tiles = cand[:, ::wb]  # the non-overlapping blocks before the current level, from the window's start
            z_s = _z(best, now, se_s, np.inf, tiles, wb, w)
            z_sp = _z(best, now, se_spread, max(dof, 1.0), tiles, wb, w)
            use_s, near = _sampling_chosen(se_s, se_spread, dof, w == 1)
            z = np.where(near, np.fmax(z_s, z_sp), np.where(use_s, z_s, z_sp))
            possible |= gate & (unsure | (z * (1 + SLACK) + SLACK >= thr))
    return possible


def _z(best: np.ndarray, now: np.ndarray, se: np.ndarray, dof: float, tiles: np.ndarray, wb: int,
       w: int) -> np.ndarray:
    """The scan's z (levels.level_drop) with standard error `se`, its selection correction from the fewest
    contenders the rounding allows (an upper bound on z). NaN where `se` is."""
    se = np.maximum(se, 1e-9)
    se_block = se * np.sqrt(w / (wb + w))
    contenders = np.maximum(1, np.sum(tiles >= (best - 2 * np.sqrt(2) * se_block)[:, None] + SLACK * se_block[:, None],
                                      axis=1))
    bias = se_block * np.array([expected_max(int(m)) for m in range(tiles.shape[1] + 1)])[contenders]
    t = (best - bias - now) / se
    pv = special.ndtr(-t) if np.isinf(dof) else special.stdtr(dof, -t)
    return -special.ndtri(np.maximum(pv, 1e-300))


def _sampling_chosen(se_s: np.ndarray, se_spread: np.ndarray, dof: float, single: bool) -> tuple[np.ndarray, np.ndarray]:
    """Where level_drop judges with the sampling noise rather than the spread, and where that choice sits
    within rounding of its boundary (then both are tried)."""
    fin_s, fin_sp = np.isfinite(se_s), np.isfinite(se_spread)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = se_spread / se_s
        if single and dof >= MIN_SPREAD_DOF:
            chosen, edge = ratio <= 1, np.abs(ratio - 1)
        else:
            cut = special.chdtri(dof, SPREAD_ALPHA) if dof > 0 else np.inf
            chosen = (ratio <= 1) | ((se_s > 0) & (ratio ** 2 * dof < cut))
            edge = np.fmin(np.abs(ratio - 1), np.abs(ratio ** 2 * dof / cut - 1) if np.isfinite(cut) else np.inf)
    use_s = fin_s & (~fin_sp | (dof < MIN_SPREAD_DOF) | chosen)
    near = fin_s & fin_sp & (dof >= MIN_SPREAD_DOF) & (edge < 1e-6)
    return use_s, near


def _spread(d2: np.ndarray, k: np.ndarray, lo: np.ndarray, w: int, H: int) -> tuple[np.ndarray, float]:
    """spread_sigma(window, cut=H - w) for every window, with its degrees of freedom: its second
    differences on either side of the cut (none spanning it), clipped and calibrated as the scan does.
    NaN with fewer than 3."""
    left = H - w - 2  # centres lo+1 .. lo+H-w-2
    right = max(w - 2, 0)  # centres k-w+2 .. k-1
    parts = []
    if left > 0:
        parts.append(windows(d2, left)[lo])
    if right > 0:
        parts.append(windows(d2, right)[k - w + 1])
    m = max(left, 0) + right
    if m < 3:
        return np.full(len(k), np.nan), 0.0
    bias, dof = _d2_calibration(min(m, CALIBRATED))
    return _d2_rms(np.concatenate(parts, axis=1)) / bias, dof * max(1.0, m / CALIBRATED)


class _ItemSums:
    """Per-item results of the evaluations that have the run's most common item count, summed over
    evaluations (paired differences of block means from two subtractions)."""

    def __init__(self, a: Aligned):
        self.length = np.array([len(a.items.get(int(s), ())) for s in a.steps], dtype=int)
        counts = np.bincount(self.length[self.length >= 2]) if (self.length >= 2).any() else np.zeros(1, int)
        self.L = int(np.argmax(counts)) if counts.any() else 0
        self.cum = None
        if self.L >= 2:
            rows = np.zeros((len(a.steps), self.L))
            for i, s in enumerate(a.steps):
                if self.length[i] == self.L:
                    rows[i] = a.items[int(s)]
            self.cum = np.vstack([np.zeros((1, self.L)), np.cumsum(rows, axis=0)])


def _sampling_se(run: _Series, j: np.ndarray, wb: int, k: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """The sampling standard error of best-block mean minus current mean, as the scan computes it (per-item
    results paired when every evaluation of both blocks has them, all of one length; else eval sizes),
    and where it cannot be computed here (paired, but at an unusual item count): those are judged exactly."""
    s = k - w + 1
    items = run.items
    lmin = np.minimum(run.window("lmin", wb)[j], run.window("lmin", w)[s])
    lmax = np.maximum(run.window("lmax", wb)[j], run.window("lmax", w)[s])
    paired = (lmin == lmax) & (lmin >= 2)
    unsure = paired & (lmin != items.L)
    se = np.full(len(k), np.nan)
    use = paired & ~unsure
    if use.any() and items.cum is not None:
        c = items.cum
        b = (c[j[use] + wb] - c[j[use]]) / wb
        now = (c[k[use] + 1] - c[s[use]]) / w
        se[use] = (b - now).std(axis=1, ddof=1) / np.sqrt(items.L)
    sizes = ~paired & (np.minimum(run.window("nmin", wb)[j], run.window("nmin", w)[s]) > 0)
    if sizes.any():
        vb = run.window("var", wb)[j[sizes]]
        vn = run.window("var", w)[s[sizes]]
        se[sizes] = np.sqrt(vb / wb ** 2 + vn / w ** 2)
    return se, unsure


def _stalls(a: Aligned, p: DecouplingParams, ks: np.ndarray) -> np.ndarray:
    """For each k, whether stall_at can raise anything: the training reward's Theil-Sen slope over the
    last `stall_window` evaluations rises by the minimum and its lower bound can be above 0 (the bound
    is the sorted slope at rank rl, never above the rank it takes with no spread at all), and held-out
    accuracy's slope does not rise by more than allowed. Windows with a missing value: judged exactly."""
    out = np.ones(len(ks), bool)
    W = p.stall_window
    if W < 3 or len(a) < W:
        return out
    x = np.asarray(a.steps, dtype=float)
    r, acc = np.asarray(a.reward, dtype=float), np.asarray(a.acc, dtype=float)
    i, jj = np.triu_indices(W, k=1)
    xs, rs, as_ = windows(x, W), windows(r, W), windows(acc, W)
    dx = xs[:, jj] - xs[:, i]
    ok = np.all(np.isfinite(rs), axis=1) & np.all(np.isfinite(as_), axis=1) & np.all(dx != 0, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rsl = np.sort((rs[:, jj] - rs[:, i]) / dx, axis=1)
        asl = np.sort((as_[:, jj] - as_[:, i]) / dx, axis=1)
    nt = len(i)
    med = lambda s: s[:, nt // 2] if nt % 2 else (s[:, nt // 2 - 1] + s[:, nt // 2]) / 2  # noqa: E731
    span = xs[:, -1] - xs[:, 0]
    rl_max = max(int(round(nt / 2.0)) - 1, 0)
    rises = (med(rsl) * span >= p.stall_min_reward_rise * (1 - SLACK) - SLACK) & (rsl[:, rl_max] > -SLACK)
    flat = med(asl) * span <= p.stall_max_acc_rise * (1 + SLACK) + SLACK
    can = ~ok | (rises & flat)  # index t: the window ending at evaluation t + W - 1
    has = ks >= W - 1
    out[has] = can[ks[has] - W + 1]
    return out
