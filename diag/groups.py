"""Per-group statistics of one generation batch: pure numpy, no I/O.

A GRPO generation batch holds `n` completions; completions of one prompt form a group of G. A group
whose completions all earn the same reward gets zero advantage and teaches nothing. We decide that
per group from the *raw* rewards with an epsilon, never from the std used to scale advantages (under
`scale_rewards="batch"` TRL's own zero-std fraction reads 0 while most groups are dead).

Everything works on a padded `[groups x Gmax]` layout so ragged groups (a partial last group, groups
rebuilt from imported logs) go through the same vectorised path: padding is NaN and masked out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from diag.schema import ALL_FAIL, ALL_PASS, MIXED, TIED

DEFAULT_EPS = 1e-6


@dataclass(frozen=True)
class Batch:
    """One generation batch, flat over completions (row i is completion i)."""

    rewards: np.ndarray  # [n x funcs] raw reward per function, NaN where a function returned None
    weights: np.ndarray  # [funcs]
    group_index: np.ndarray  # [groups x Gmax] row numbers into the flat arrays, -1 = padding
    advantages: np.ndarray | None = None  # [n]
    lengths: np.ndarray | None = None  # [n] completion length in tokens
    clipped: np.ndarray | None = None  # [n] bool: hit the length cap without EOS
    passed: np.ndarray | None = None  # [n] bool: passes the task verifier
    truth: np.ndarray | None = None  # [n] float 1 / 0: the truth function's verdict, NaN where it gave none


def as_float_matrix(rewards: Sequence | np.ndarray, n_funcs: int | None = None) -> np.ndarray:
    """Rewards as float [n x funcs]; None becomes NaN so a missing reward is counted, not a crash."""
    arr = np.asarray(rewards, dtype=object if _has_none(rewards) else None)
    if arr.dtype == object:
        arr = np.where(arr == None, np.nan, arr).astype(float)  # noqa: E711 - elementwise None test
    arr = np.asarray(arr, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None] if (n_funcs in (None, 1)) else arr.reshape(-1, n_funcs)
    elif arr.ndim == 3:  # [groups x G x funcs]
        arr = arr.reshape(-1, arr.shape[-1])
    if arr.ndim != 2:
        raise ValueError(f"rewards must be [n x funcs] or [groups x G x funcs], got shape {arr.shape}")
    return arr


def _has_none(x) -> bool:
    if isinstance(x, np.ndarray):
        return x.dtype == object
    stack = [x]
    while stack:
        v = stack.pop()
        if v is None:
            return True
        if isinstance(v, (list, tuple)):
            stack.extend(v)
    return False


def group_layout(n: int, group_size: int | None = None, group_ids: Sequence | None = None) -> np.ndarray:
    """[groups x Gmax] row index, -1 padded.

    Without ids, rows come in consecutive blocks of `group_size` (TRL's RepeatSampler puts each prompt
    G times in a row); a short last block becomes a smaller group instead of being dropped.
    """
    if group_ids is None:
        if not group_size or group_size < 1:
            raise ValueError("group_size must be a positive integer when group_ids is not given")
        g = -(-n // group_size)
        idx = np.arange(g * group_size)
        idx[idx >= n] = -1
        return idx.reshape(g, group_size)
    ids = list(group_ids)
    if len(ids) != n:
        raise ValueError(f"group_ids has {len(ids)} entries for {n} completions")
    order: dict = {}
    for i, gid in enumerate(ids):
        order.setdefault(gid, []).append(i)
    gmax = max((len(v) for v in order.values()), default=0)
    out = np.full((len(order), gmax), -1, dtype=np.int64)
    for r, members in enumerate(order.values()):
        out[r, : len(members)] = members
    return out


def _gather(flat: np.ndarray, index: np.ndarray, fill=np.nan) -> np.ndarray:
    """flat[index] with padding (-1) replaced by `fill`; keeps trailing dims."""
    out = flat[np.where(index < 0, 0, index)].astype(float if fill is np.nan else flat.dtype, copy=True)
    out[index < 0] = fill
    return out


def _masked_stats(x: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, ...]:
    """mean, population std, min, max, count along axis 1 over `valid` entries (NaN when none)."""
    cnt = valid.sum(axis=1)
    safe = np.where(valid, x, 0.0)
    # huge finite rewards may overflow to inf here: that is reported as such, not warned about
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mean = safe.sum(axis=1) / cnt
        var = np.where(valid, (x - mean[:, None, ...]) ** 2, 0.0).sum(axis=1) / cnt
    lo = np.where(valid, x, np.inf).min(axis=1)
    hi = np.where(valid, x, -np.inf).max(axis=1)
    empty = cnt == 0
    lo, hi = np.where(empty, np.nan, lo), np.where(empty, np.nan, hi)
    return mean, np.sqrt(var), lo, hi, cnt


def total_reward(rewards: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted sum over functions ignoring NaN (as TRL does); NaN only when every function is NaN."""
    weighted = rewards * weights[None, :]
    all_nan = np.isnan(rewards).all(axis=1)
    return np.where(all_nan, np.nan, np.nansum(weighted, axis=1))


def group_stats(batch: Batch, eps: float = DEFAULT_EPS) -> dict[str, np.ndarray]:
    """Columns of the `groups` table (numeric part) for one batch, one entry per group."""
    idx = batch.group_index
    member = idx >= 0
    total = _gather(total_reward(batch.rewards, batch.weights), idx)  # [g x Gmax]
    valid = member & np.isfinite(total)
    mean, std, lo, hi, n_valid = _masked_stats(total, valid)

    per_func = _gather(batch.rewards, idx)  # [g x Gmax x funcs]
    fvalid = member[..., None] & np.isfinite(per_func)
    f_mean, f_std, f_lo, f_hi, f_cnt = _masked_stats(per_func, fvalid)
    func_tied = ~((f_cnt >= 2) & (f_hi - f_lo > eps))

    G = member.sum(axis=1)
    mixed = (n_valid >= 2) & (hi - lo > eps)
    if batch.passed is not None:
        passed = _gather(np.asarray(batch.passed, dtype=float), idx) > 0.5
        n_pass = (passed & member).sum(axis=1)
        degenerate = np.where(n_pass == G, ALL_PASS, np.where(n_pass == 0, ALL_FAIL, TIED))
    else:
        n_pass = None
        degenerate = np.full(len(G), TIED)
    signal = np.where(mixed, MIXED, degenerate)
    n_true = None
    if batch.truth is not None:
        tr = _gather(np.asarray(batch.truth, dtype=float), idx, fill=0.0)
        n_true = ((tr > 0.5) & member).sum(axis=1)

    out: dict[str, np.ndarray] = {
        "G": G,
        "n_valid": n_valid,
        "reward_mean": mean,
        "reward_std": std,
        "reward_min": lo,
        "reward_max": hi,
        "func_mean": f_mean,
        "func_std": f_std,
        "func_tied": func_tied,
        "n_pass": n_pass,
        "n_true": n_true,
        "signal": signal,
    }
    if batch.advantages is not None:
        adv = _gather(np.asarray(batch.advantages, dtype=float), idx)
        avalid = member & np.isfinite(adv)
        a_mean, a_std, _, _, _ = _masked_stats(adv, avalid)
        abs_mean, _, _, _, _ = _masked_stats(np.abs(adv), avalid)
        out.update(adv_mean=a_mean, adv_var=a_std**2, adv_abs_mean=abs_mean)
    if batch.lengths is not None:
        ln = _gather(np.asarray(batch.lengths, dtype=float), idx)
        out["len_mean"] = _masked_stats(ln, member & np.isfinite(ln))[0]
    if batch.clipped is not None:
        cl = _gather(np.asarray(batch.clipped, dtype=float), idx, fill=0.0)
        out["n_clipped"] = (cl > 0.5).sum(axis=1)
    return out


def step_stats(batch: Batch, groups: dict[str, np.ndarray]) -> dict:
    """One `steps` row (numeric part) aggregated from a batch and its group statistics."""
    total = total_reward(batch.rewards, batch.weights)
    ok = np.isfinite(total)
    signal = groups["signal"]
    n_groups = len(signal)

    def frac(kind: str) -> float:
        return float((signal == kind).mean()) if n_groups else float("nan")

    def nanmean(x) -> float:
        x = np.asarray(x, dtype=float)
        x = x[np.isfinite(x)]
        return float(x.mean()) if x.size else float("nan")

    func_mean = [nanmean(batch.rewards[:, j]) for j in range(batch.rewards.shape[1])]
    n = int(groups["G"].sum())
    row = {
        "n_groups": n_groups,
        "n_completions": n,
        "reward_mean": float(total[ok].mean()) if ok.any() else float("nan"),
        "reward_std": float(total[ok].std()) if ok.any() else float("nan"),
        "func_mean": func_mean,
        "frac_zero_signal": 1.0 - frac(MIXED) if n_groups else float("nan"),
        "frac_all_fail": frac(ALL_FAIL),
        "frac_all_pass": frac(ALL_PASS),
        "frac_tied": frac(TIED),
        "frac_no_pass": float((groups["n_pass"] == 0).mean()) if n_groups and groups.get("n_pass") is not None
        else float("nan"),
        "effective_batch": int(groups["G"][signal == MIXED].sum()),
        "n_invalid": int(n - groups["n_valid"].sum()),
        "adv_var_mean": nanmean(groups["adv_var"]) if "adv_var" in groups else float("nan"),
        "adv_abs_mean": nanmean(np.abs(batch.advantages)) if batch.advantages is not None else float("nan"),
        "len_mean": nanmean(batch.lengths) if batch.lengths is not None else float("nan"),
        "frac_clipped": (
            float(groups["n_clipped"].sum() / n) if batch.clipped is not None and n else float("nan")
        ),
    }
    if batch.truth is not None:
        row.update(truth_stats(total, batch.rewards, np.asarray(batch.truth, dtype=float)))
    return row


def truth_stats(total: np.ndarray, rewards: np.ndarray, truth: np.ndarray) -> dict:
    """What the reward pays for against what is true, over the completions both judged: the truth
    rate, the mean total reward of true and of untrue completions, each function's mean over the
    untrue ones, and the share of the positive reward mass paid to untrue completions (a lenient or
    format reward paying for wrong answers shows here step by step)."""
    judged = np.isfinite(truth) & np.isfinite(total)
    t, r = truth[judged] > 0.5, total[judged]
    nan = float("nan")

    def mean(x) -> float:
        x = x[np.isfinite(x)]
        return float(x.mean()) if x.size else nan

    paid = np.clip(r, 0.0, None)
    return {
        "truth_rate": float(t.mean()) if t.size else nan,
        "n_truth": int(t.size),
        "reward_true": mean(r[t]),
        "reward_untrue": mean(r[~t]),
        "func_untrue": [mean(rewards[judged][~t, j]) for j in range(rewards.shape[1])],
        "untrue_share": float(paid[~t].sum() / paid.sum()) if paid.sum() > 0 else nan,
    }
