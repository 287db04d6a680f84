"""Put the dense training series on the sparse evaluation axis.

For each evaluation at step e, training quantities are averaged over the steps in a window centred
on e (half the evaluation spacing each side): the policy evaluated at e is the one that generated
those batches. Everything downstream compares one reward number with one accuracy number per eval.
"""

from __future__ import annotations

import re

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from diag.summary import accuracy_series, first_eval_set, once_per_step


@dataclass
class Aligned:
    eval_set: str
    steps: np.ndarray  # [k] evaluation steps
    acc: np.ndarray  # [k] held-out accuracy
    n: np.ndarray  # [k] items per evaluation
    reward: np.ndarray  # [k] mean training reward around each evaluation
    funcs: np.ndarray  # [k x funcs] per reward function
    length: np.ndarray  # [k] mean completion length
    clipped: np.ndarray  # [k] share of completions cut at the length cap
    func_names: list[str]
    items: dict[int, np.ndarray] = field(default_factory=dict)  # step -> per-item correctness
    # the run's other held-out sets on the same evaluation steps: name -> (accuracy [k], items [k]), NaN
    # where a set was not evaluated; they corroborate a fall of this one (diag.detect.decoupling)
    companions: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    # the training reward step by step (sorted steps, one reward each): a reward level's own noise, and a
    # reference over as many steps as that noise demands (diag.detect.collapse); None where unknown
    step_axis: np.ndarray | None = None
    step_reward: np.ndarray | None = None
    truth: np.ndarray | None = None  # [k] the strict check's pass rate on the training completions, where recorded

    def __len__(self) -> int:
        return len(self.steps)

    def step_rewards(self, i0: int, i1: int, least: int = 0, before: int | None = None) -> np.ndarray:
        """The per-step rewards around evaluations i0..i1 (half an evaluation spacing each side, as the
        window means take them); with `least`, extended forward to at least that many steps but never past
        evaluation `before`'s step: the steps between a best evaluation and the next are the ones its policy
        produced (a run's first evaluation has no steps before it). Empty without a per-step series."""
        if self.step_axis is None or self.step_reward is None or not len(self.step_axis):
            return np.empty(0)
        half = _half_spacing(self.steps)
        lo = np.searchsorted(self.step_axis, self.steps[i0] - half, "right")
        hi = np.searchsorted(self.step_axis, self.steps[i1] + half, "right")
        if hi - lo < least:
            cap = (np.searchsorted(self.step_axis, self.steps[before], "right")
                   if before is not None and before < len(self.steps) else len(self.step_axis))
            hi = max(hi, min(lo + least, cap))
        return self.step_reward[lo:hi]

    def head(self, k: int) -> "Aligned":
        """The first k evaluations: what an online monitor knew at evaluation k-1."""
        return self.window(0, k)

    def window(self, lo: int, hi: int) -> "Aligned":
        """Evaluations lo..hi-1 (the recent history a detector judges, bounded however long the run)."""
        sl = slice(lo, hi)
        # looked up by the window's own steps: a long run holds thousands of evaluations' items
        items = {s: self.items[s] for s in self.steps[sl].tolist() if s in self.items}
        return Aligned(self.eval_set, self.steps[sl], self.acc[sl], self.n[sl], self.reward[sl], self.funcs[sl],
                       self.length[sl], self.clipped[sl], self.func_names, items,
                       {k: (acc[sl], n[sl]) for k, (acc, n) in self.companions.items()},
                       self.step_axis, self.step_reward,  # the steps stay whole: looked up by step
                       None if self.truth is None else self.truth[sl])


def floats(steps: pl.DataFrame, name: str) -> np.ndarray:
    """A column as floats, NaN where missing, unreadable or absent."""
    if name in steps.columns:
        return steps[name].cast(pl.Float64, strict=False).to_numpy()
    return np.full(steps.height, np.nan)


def _half_spacing(eval_steps: np.ndarray) -> float:
    spacing = float(np.median(np.diff(eval_steps))) if len(eval_steps) > 1 else 10.0
    return max(1.0, spacing / 2)


def window_means(step_axis: np.ndarray, values: np.ndarray, eval_steps: np.ndarray) -> np.ndarray:
    """Mean of `values` over steps within half an eval spacing of each eval step ([k] or [k x f]), NaN
    where none is finite. One pass: the windows' bounds by one search each and their sums by
    np.add.reduceat (each window's own values summed, no running total to lose precision in), so a run
    with 10,000 evaluations aligns in milliseconds."""
    if len(eval_steps) == 0:
        return np.empty((0,) + values.shape[1:])
    half = _half_spacing(eval_steps)
    eval_steps = np.asarray(eval_steps, dtype=float)
    lo = np.searchsorted(step_axis, eval_steps - half, "right")
    hi = np.searchsorted(step_axis, eval_steps + half, "right")
    vals = np.asarray(values, dtype=float)
    ok = np.isfinite(vals)
    sums, cnt = _window_sums(np.where(ok, vals, 0.0), lo, hi), _window_sums(ok.astype(float), lo, hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, sums / np.maximum(cnt, 1), np.nan)


def _window_sums(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Sum of x[lo[i]:hi[i]] along the first axis for every i (0 for an empty window). Windows that
    overlap (unevenly spaced evaluations) are summed in two interleaved passes, each of disjoint ones."""
    out = np.zeros((len(lo),) + x.shape[1:])
    if not len(x):
        return out
    xp = np.concatenate([x, np.zeros((1,) + x.shape[1:])])  # reduceat reads one past a window that ends last
    for part in (np.arange(0, len(lo), 2), np.arange(1, len(lo), 2)) if _overlap(lo, hi) else (np.arange(len(lo)),):
        a, b = lo[part], hi[part]
        if len(part) > 1 and np.any(a[1:] < b[:-1]):  # still overlapping: one window at a time
            for i, j, m in zip(part, a, b):
                out[i] = x[j:m].sum(axis=0)
            continue
        idx = np.stack([a, b], 1).ravel()
        got = np.add.reduceat(xp, np.minimum(idx, len(x)), axis=0)[::2]
        out[part] = np.where(((b > a)[:, None] if x.ndim > 1 else b > a), got, 0.0)
    return out


def _overlap(lo: np.ndarray, hi: np.ndarray) -> bool:
    return len(lo) > 1 and bool(np.any(lo[1:] < hi[:-1]))


def build(eval_set: str, eval_steps: np.ndarray, acc: np.ndarray, n: np.ndarray, step_axis: np.ndarray,
          series: dict[str, np.ndarray], funcs: np.ndarray, func_names: list[str],
          items: dict[int, np.ndarray],
          companions: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> Aligned:
    """The one way evaluations meet the training series, offline (`align`) and live (diag.monitor):
    `step_axis` sorted, one entry per step; `series` holds reward, length and clipped per step."""
    return Aligned(
        eval_set=str(eval_set), steps=np.asarray(eval_steps).astype(int), acc=np.asarray(acc, dtype=float),
        n=np.asarray(n, dtype=float),
        reward=window_means(step_axis, series["reward"], eval_steps),
        funcs=window_means(step_axis, funcs, eval_steps),
        length=window_means(step_axis, series["length"], eval_steps),
        clipped=window_means(step_axis, series["clipped"], eval_steps),
        func_names=list(func_names), items=items, companions=dict(companions or {}),
        step_axis=np.asarray(step_axis, dtype=float), step_reward=np.asarray(series["reward"], dtype=float),
        truth=window_means(step_axis, series["truth"], eval_steps) if "truth" in series else None,
    )


def func_matrix(values: list | pl.Series, width: int) -> np.ndarray:
    """Per-step lists of per-function rewards -> a [steps x width] float matrix (NaN where missing). A
    polars list column is read one position at a time (a 100k-step run's lists never become Python objects)."""
    if isinstance(values, pl.Series):
        cols = [values.list.get(i, null_on_oob=True).cast(pl.Float64).fill_null(np.nan).to_numpy() for i in range(width)]
        return np.stack(cols, 1) if cols else np.empty((len(values), 0))
    rows = [(list(v) + [None] * width)[:width] if v is not None else [None] * width for v in values]
    return np.array(rows, dtype=float).reshape(len(rows), width)


def align(steps: pl.DataFrame, evals: pl.DataFrame, eval_items: pl.DataFrame | None = None,
          func_names: list[str] | None = None, eval_set: str | None = None,
          metric: str = "accuracy") -> Aligned:
    eval_set = eval_set or first_eval_set(evals, metric)
    e = accuracy_series(evals, eval_set, metric)
    eval_steps = e["step"].to_numpy().astype(float)
    s = once_per_step(steps)
    step_axis = s["step"].to_numpy().astype(float) if s.height else np.empty(0)
    names = list(func_names or [])
    if s.height and "func_mean" in s.columns and s["func_mean"].dtype != pl.Null:
        fm = func_matrix(s["func_mean"], len(names) or int(s["func_mean"].list.len().max() or 0))
    else:
        fm = np.full((s.height, len(names)), np.nan)
    items: dict[int, np.ndarray] = {}
    if eval_items is not None and eval_items.height:
        # a repeated evaluation: its first record (a stable sort keeps the records of one item in order)
        ei = eval_items.filter(pl.col("eval_set") == eval_set).select("step", "item", "correct")
        st, it = ei["step"].to_numpy(), ei["item"].to_numpy()
        if not _ordered(st, it):  # as the recorder writes them, they are: a sort of millions of rows saved
            ei = ei.sort(["step", "item"], maintain_order=True)
            st, it = ei["step"].to_numpy(), ei["item"].to_numpy()
        ok = ei["correct"].to_numpy().astype(bool)
        first = np.ones(len(st), bool)
        first[1:] = (st[1:] != st[:-1]) | (it[1:] != it[:-1])
        st, ok = st[first], ok[first]
        # split by step in one pass (a long run holds thousands of evaluations' items)
        cuts = np.flatnonzero(np.diff(st)) + 1
        items = {int(s[0]): part for s, part in zip(np.split(st, cuts), np.split(ok, cuts)) if len(s)}
    series = {"reward": floats(s, "reward_mean"), "length": floats(s, "len_mean"),
              "clipped": floats(s, "frac_clipped"), "truth": floats(s, "truth_rate")}
    return build(eval_set or "", eval_steps, e["value"].to_numpy().astype(float),
                 e["n"].cast(pl.Float64).to_numpy(), step_axis, series, fm, names, items,
                 companions_on(evals, eval_set, eval_steps, metric))


def _ordered(step: np.ndarray, item: np.ndarray) -> bool:
    """Whether (step, item) pairs are already in ascending order (ties kept in place by a stable sort)."""
    if len(step) < 2:
        return True
    ds, di = np.diff(step), np.diff(item)
    return bool(np.all((ds > 0) | ((ds == 0) & (di >= 0))))


# a metric that grades the same completions again (their format, a length-normalised or lenient score, pass@k
# or maj@k of the same samples) is one measurement with the accuracy, never a second held-out set
SAME_COMPLETIONS = re.compile(r"format|len(gth)?[_-]?norm|pass@|pass_at|best@|maj@|worst@|strict|lenient", re.I)


def companions_on(evals: pl.DataFrame, eval_set: str | None, eval_steps: np.ndarray,
                  metric: str = "accuracy") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The other held-out sets' accuracy and sizes on `eval_steps` (NaN where a set has no evaluation),
    without a grading of the same completions (SAME_COMPLETIONS) and the sets that repeat another (a log's `eval_accuracy` copied from one benchmark, or one
    set's average of two others): counted twice they would double their evidence."""
    if eval_set is None or not evals.height:
        return {}
    names = [s for s in evals.filter((pl.col("metric") == metric) & (pl.col("bucket") == "all"))["eval_set"]
             .unique(maintain_order=True).to_list() if s != eval_set and not SAME_COMPLETIONS.search(s)]
    pos = {int(s): i for i, s in enumerate(eval_steps)}
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in names:
        acc, n = np.full(len(eval_steps), np.nan), np.full(len(eval_steps), np.nan)
        for st, v, k in accuracy_series(evals, name, metric).iter_rows():
            if int(st) in pos and v is not None:
                acc[pos[int(st)]], n[pos[int(st)]] = v, np.nan if k is None else k
        out[name] = (acc, n)
    primary = accuracy_series(evals, eval_set, metric)
    own = np.full(len(eval_steps), np.nan)
    own[[pos[int(s)] for s in primary["step"]]] = primary["value"].to_numpy()
    return independent(own, out)


def independent(primary: np.ndarray, sets: dict[str, tuple[np.ndarray, np.ndarray]],
                tol: float = 5e-4) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`sets` less any that equals the primary or a set kept before it, or the mean of two others,
    on the steps they share (at least 3): a copy or an average is not a second measurement."""
    def same(x, y) -> bool:
        both = np.isfinite(x) & np.isfinite(y)
        return int(both.sum()) >= 3 and bool(np.all(np.abs(x[both] - y[both]) <= tol))

    series = {k: v[0] for k, v in sets.items()}
    kept: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, (acc, n) in sets.items():
        others = [v for k, v in series.items() if k != name]
        if same(acc, primary) or any(same(acc, v[0]) for v in kept.values()):
            continue
        if any(same(acc, (x + y) / 2) for i, x in enumerate(others) for y in others[i + 1:]):
            continue
        kept[name] = (acc, n)
    return kept
