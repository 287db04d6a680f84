"""Statistics for sparse, noisy training series: pure functions on numpy arrays (scipy inside).

Training reward is dense and noisy; held-out accuracy is sparse (one point per evaluation). The tools
here suit that: robust trend estimates (Theil-Sen, Mann-Kendall), rank correlations with bootstrap
intervals, paired tests on the same held-out items (far more powerful than comparing two means), and
online change-point statistics for onset estimates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import special  # scipy.stats costs a third of a second to import: used lazily


def _clean(x, y=None):
    x = np.asarray(x, dtype=float)
    if y is None:
        return x[np.isfinite(x)]
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


@dataclass(frozen=True)
class Trend:
    slope: float
    intercept: float
    lo: float  # confidence interval of the slope
    hi: float
    n: int

    @property
    def significant_up(self) -> bool:
        return self.lo > 0

    @property
    def significant_down(self) -> bool:
        return self.hi < 0


@lru_cache(maxsize=16)
def _normal_quantile(q: float) -> float:
    return float(special.ndtri(q))


def theil_sen(x, y, confidence: float = 0.95) -> Trend:
    """Median of pairwise slopes with its confidence interval (Sen 1968), computed as
    scipy.stats.theilslopes does (method "separate") without its per-call overhead: the detectors
    call this once per evaluation."""
    x, y = _clean(x, y)
    n = len(x)
    if n < 3 or np.ptp(x) == 0:
        return Trend(math.nan, math.nan, math.nan, math.nan, n)
    i, j = np.triu_indices(n, k=1)
    dx = x[j] - x[i]
    keep = dx != 0
    slopes = np.sort((y[j] - y[i])[keep] / dx[keep])
    nt = len(slopes)
    slope = float(slopes[nt // 2] if nt % 2 else (slopes[nt // 2 - 1] + slopes[nt // 2]) / 2)
    intercept = float(np.median(y) - slope * np.median(x))
    # Kendall's S variance with ties in x, as scipy does
    _, xt = np.unique(x, return_counts=True)
    _, yt = np.unique(y, return_counts=True)
    var = (n * (n - 1) * (2 * n + 5) - np.sum(xt * (xt - 1) * (2 * xt + 5)) -
           np.sum(yt * (yt - 1) * (2 * yt + 5))) / 18.0
    z = _normal_quantile((1 - confidence) / 2)
    sigma = math.sqrt(max(var, 0.0))  # all-tied data: a zero-width interval, as scipy gives
    ru = min(int(round((nt - z * sigma) / 2.0)), nt - 1)
    rl = max(int(round((nt + z * sigma) / 2.0)) - 1, 0)
    return Trend(slope, intercept, float(slopes[rl]), float(slopes[ru]), n)


@dataclass(frozen=True)
class MannKendall:
    s: float
    z: float
    p: float  # two-sided
    tau: float
    n: int


def mann_kendall(y) -> MannKendall:
    """Mann-Kendall trend test with the tie-corrected variance (two-sided normal approximation)."""
    y = _clean(y)
    n = len(y)
    if n < 3:
        return MannKendall(0.0, 0.0, 1.0, 0.0, n)
    diff = np.sign(y[None, :] - y[:, None])
    s = float(np.triu(diff, k=1).sum())
    _, counts = np.unique(y, return_counts=True)
    var = (n * (n - 1) * (2 * n + 5) - np.sum(counts * (counts - 1) * (2 * counts + 5))) / 18.0
    if var <= 0:
        return MannKendall(s, 0.0, 1.0, 0.0, n)
    z = (s - np.sign(s)) / math.sqrt(var) if s != 0 else 0.0
    p = 2 * special.ndtr(-abs(z))
    pairs = n * (n - 1) / 2
    return MannKendall(s, float(z), float(p), s / pairs, n)


@dataclass(frozen=True)
class Correlation:
    method: str
    r: float
    p: float
    lo: float  # bootstrap percentile interval
    hi: float
    n: int


def rank_correlation(x, y, method: str = "spearman", n_boot: int = 2000, confidence: float = 0.95,
                     seed: int = 0) -> Correlation:
    """Spearman or Kendall correlation with its p-value and a bootstrap interval over pairs."""
    x, y = _clean(x, y)
    n = len(x)
    from scipy import stats as st  # lazy: its import is slow and `check` never needs it

    fn = {"spearman": st.spearmanr, "kendall": st.kendalltau}[method]
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Correlation(method, math.nan, math.nan, math.nan, math.nan, n)
    res = fn(x, y)
    r, p = float(res.statistic), float(res.pvalue)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    boots = []
    for row in idx:
        xs, ys = x[row], y[row]
        if np.ptp(xs) == 0 or np.ptp(ys) == 0:
            continue
        boots.append(fn(xs, ys).statistic)
    boots = np.asarray(boots, dtype=float)
    boots = boots[np.isfinite(boots)]
    a = (1 - confidence) / 2
    lo, hi = (np.quantile(boots, [a, 1 - a]) if len(boots) else (math.nan, math.nan))
    return Correlation(method, r, p, float(lo), float(hi), n)


@dataclass(frozen=True)
class Paired:
    n: int
    acc_a: float
    acc_b: float
    diff: float  # acc_b - acc_a
    only_a: int  # items right in a, wrong in b
    only_b: int
    p: float  # exact McNemar (two-sided binomial on the discordant pairs)
    lo: float  # paired bootstrap interval of diff
    hi: float


def mcnemar(a, b) -> tuple[int, int, float]:
    """Exact McNemar test on paired booleans: (right only in a, right only in b, two-sided p)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in size: {a.shape} vs {b.shape}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    m = only_a + only_b
    low = min(only_a, only_b)  # the exact two-sided binomial test at 1/2 (scipy's binomtest), from its CDF
    p = 1.0 if m == 0 or 2 * low == m else min(1.0, float(2 * special.bdtr(low, m, 0.5)))
    return only_a, only_b, p


def paired_compare(a, b, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> Paired:
    """Compare two evaluations of the same items: McNemar p and a paired bootstrap interval."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    only_a, only_b, p = mcnemar(a, b)
    n = len(a)
    d = b.astype(float) - a.astype(float)
    if n:
        rng = np.random.default_rng(seed)
        boots = d[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
        q = (1 - confidence) / 2
        lo, hi = np.quantile(boots, [q, 1 - q])
    else:
        lo = hi = math.nan
    return Paired(n, float(a.mean()) if n else math.nan, float(b.mean()) if n else math.nan,
                  float(d.mean()) if n else math.nan, only_a, only_b, p, float(lo), float(hi))


def paired_drop_p(before, after) -> float:
    """One-sided paired t-test p that `after` is lower than `before` (per-item means of two blocks)."""
    before, after = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    d = after - before
    if len(d) < 2:
        return 1.0
    if np.all(d == d[0]):
        return 0.0 if d[0] < 0 else 1.0
    n = len(d)
    t = d.mean() / (d.std(ddof=1) / math.sqrt(n))  # the one-sample t statistic, as scipy's ttest_1samp
    return float(special.stdtr(n - 1, t))


def two_proportion_p(p1: float, n1: int, p2: float, n2: int) -> float:
    """Two-sided p for a difference of proportions (pooled z-test): the fallback without item data."""
    if n1 < 1 or n2 < 1:
        return 1.0
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0 if p1 == p2 else 0.0
    return float(2 * special.ndtr(-abs(p1 - p2) / se))


def bootstrap_mean_ci(x, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    x = _clean(x)
    if len(x) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    boots = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    q = (1 - confidence) / 2
    lo, hi = np.quantile(boots, [q, 1 - q])
    return float(lo), float(hi)


@dataclass
class PageHinkley:
    """Online Page-Hinkley test for a downward shift in the mean of a series.

    `update(x)` returns True when the cumulative drop below the running mean exceeds `threshold`;
    `onset` is the index where the cumulative statistic last sat at its maximum, an estimate of
    where the shift began. Constant work per update.
    """

    delta: float = 0.005  # tolerated drift per observation
    threshold: float = 0.05
    n: int = 0
    mean: float = 0.0
    cum: float = 0.0
    cum_max: float = 0.0
    argmax: int = 0
    onset: int | None = None

    def update(self, x: float) -> bool:
        self.n += 1
        self.mean += (x - self.mean) / self.n
        # m_t = sum(x_i - mean_i + delta) drifts down once x sits below its running mean
        self.cum += x - self.mean + self.delta
        if self.cum >= self.cum_max:
            self.cum_max, self.argmax = self.cum, self.n - 1  # last point still "in control"
        fired = self.cum_max - self.cum > self.threshold
        if fired and self.onset is None:
            self.onset = self.argmax
        return fired


def page_hinkley_onset(x, delta: float = 0.005, threshold: float = 0.05) -> int | None:
    """Index where a downward shift began, or None if the test never fires (batch form)."""
    ph = PageHinkley(delta=delta, threshold=threshold)
    for v in _clean(x):
        if ph.update(float(v)):
            return ph.onset
    return None


def cusum_down(x, target: float | None = None, k: float = 0.0) -> np.ndarray:
    """One-sided lower CUSUM S_t = max(0, S_{t-1} + (target - x_t - k)); target defaults to x[0]."""
    x = _clean(x)
    if len(x) == 0:
        return x
    target = x[0] if target is None else target
    out = np.empty(len(x))
    s = 0.0
    for i, v in enumerate(x):
        s = max(0.0, s + (target - v - k))
        out[i] = s
    return out
