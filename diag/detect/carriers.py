"""The evidence next to a reward-accuracy finding: which reward component carries the rise, and what
completion length and the clipped share did over the same evaluations (diag.detect.decoupling, .stall)."""

from __future__ import annotations

import math
import re

import numpy as np

from diag.detect.align import Aligned


def mean(x) -> float:
    """Mean of the finite values (NaN if none)."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


def components(a: Aligned, before: slice, after: slice) -> tuple[str | None, dict]:
    """(the component whose mean rose most between the two spans, or None if none rose; every rise)."""
    rises = {}
    for f, name in enumerate(a.func_names):
        if a.funcs.ndim == 2 and f < a.funcs.shape[1]:
            rises[name] = mean(a.funcs[after, f]) - mean(a.funcs[before, f])
    finite = {k: v for k, v in rises.items() if math.isfinite(v)}
    carrier = max(finite, key=finite.get) if finite else None
    if carrier is not None and len(finite) > 1 and finite[carrier] <= 0:
        carrier = None  # no component rose: none to blame
    return carrier, rises


def fixed_pay_of(funcs: np.ndarray, reward: np.ndarray, still: float = 0.02) -> float:
    """What the training reward pays whatever a completion does: the part carried by reward functions whose
    mean never moved (each within `still` of its own level: a format bonus every completion earns), found as
    the intercept of the reward on the functions that did move. `funcs` [windows x functions] and `reward`
    are means over the same windows (evaluation windows, or blocks of steps). A share of the reward no
    completion can lose is no part of how far it fell: left in, a constant 0.2 bonus makes a strict reward
    that fell with accuracy look as if it held. Zero when no function stood still, every one did, or the
    reward is not (closely) a weighted sum of the logged functions (then nothing is assumed)."""
    if funcs.ndim != 2 or funcs.shape[1] < 2:
        return 0.0
    ok = np.isfinite(reward) & np.all(np.isfinite(funcs), axis=1)
    f, r = funcs[ok], reward[ok]
    if len(r) < f.shape[1] + 2:
        return 0.0  # too few windows to tell a sum from a coincidence
    const = f.max(axis=0) - f.min(axis=0) <= still * np.abs(f.mean(axis=0))
    if not const.any() or const.all():
        return 0.0
    x = np.column_stack([np.ones(len(r)), f[:, ~const]])
    coef, *_ = np.linalg.lstsq(x, r, rcond=None)
    misfit = float(np.sqrt(np.mean((r - x @ coef) ** 2)))
    if misfit > 0.05 * max(float(np.std(r)), 1e-12):
        return 0.0
    return float(min(max(coef[0], 0.0), np.min(r)))


def support(a: Aligned, before: slice, after: slice) -> tuple[str, dict]:
    """Completion length and the clipped share before and after, in words where they moved (a policy
    padding answers to the length cap shows here first) and as numbers."""
    l0, l1 = mean(a.length[before]), mean(a.length[after])
    c0, c1 = mean(a.clipped[before]), mean(a.clipped[after])
    ev = {"length_before": l0, "length_after": l1, "clipped_before": c0, "clipped_after": c1}
    parts = []
    if math.isfinite(l0) and math.isfinite(l1) and l1 > l0 * 1.15:
        parts.append(f"mean completion length {l0:.1f} -> {l1:.1f} tokens")
    if math.isfinite(c0) and math.isfinite(c1) and c1 - c0 > 0.03:
        parts.append(f"completions cut at the length cap {100 * c0:.0f}% -> {100 * c1:.0f}%")
    return ("; ".join(parts), ev)


# a reward function named as the task's own check (TRL's accuracy_reward, answer_correct, exact_match), not a
# lenient, partial or format one
VERIFIER_NAME = re.compile(r"accura|correct|exact|verif|solved|\bacc\b|^acc_", re.I)
NOT_VERIFIER = re.compile(r"lenient|last|partial|soft|format|length|any|fuzzy|style|len_", re.I)


def verifier_like(a: Aligned, name: str) -> str | None:
    """Why the reward function `name` is the task's own check on the training prompts, or None: it tracks
    the strict check's pass rate on the training completions where the run records it (correlation >= 0.9
    over its evaluations), else its name says so."""
    if name not in a.func_names:
        return None
    f = a.funcs[:, a.func_names.index(name)] if a.funcs.ndim == 2 else np.empty(0)
    if a.truth is not None and len(f) == len(a.truth):
        ok = np.isfinite(f) & np.isfinite(a.truth)
        if ok.sum() >= 4 and np.ptp(f[ok]) > 0 and np.ptp(a.truth[ok]) > 0:
            r = float(np.corrcoef(f[ok], a.truth[ok])[0, 1])
            return f"it tracks the strict check's pass rate on the training completions (correlation {r:.2f})" \
                if r >= 0.9 else None
    if VERIFIER_NAME.search(name) and not NOT_VERIFIER.search(name):
        return "its name says it is the task's own check"
    return None
