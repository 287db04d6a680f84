"""The clairvoyant ceiling of the generated shapes: how often *any* end-of-run verdict could find a fall.

A detector that knows what no detector can, every evaluation's true noise sd (sampling at the clean
accuracy plus the checkpoint variation the generator drew), judges each run once at its end: the largest
standardised gap between a best block of three evaluations and the mean of any final stretch,

    z = max over (best block b before stretch c) of (mean b - mean c) / sqrt(var b + var c),

with its threshold set so that exactly 1% of healthy_noisy runs (the false-alarm target) cross it. The share
of each slow decoupled shape above that threshold bounds what a verdict with the same false alarms can
reach without knowing the noise (benchmarks/validity.py prints it beside grpo-diag's figures). It knows no
onset and no reward; the format stall is no fall of accuracy and gets none.

A dip (a transient that recovers) is no end-of-run fall: its ceiling is the same test live, on any stretch
of one to DIP_LONGEST consecutive evaluations after a best block (not only a final one),

    z_dip = max over (best block b before stretch c, c of 1..5 evaluations anywhere) of (mean b - mean c) / sqrt(var b + var c),

with its own threshold at 1% of healthy_noisy runs. It counts a crossing anywhere in the run and never asks
that the dip be seen to end, so it bounds from above what a detector that must also resolve the episode can find.

The tiny-model falls (benchmarks/detection.py) get a clairvoyant *delay* (`tiny_delays`): the live scan's
question at every evaluation (a best block of three against the last one to six evaluations) with each
evaluation's noise known from the per-item chances the generator drew, its threshold at 1% of tiny-healthy
runs ever crossing it; the evaluations from the onset to its first crossing bound how soon any live monitor
with those false alarms can speak.
"""

from __future__ import annotations

import math

import numpy as np

FALLS = ("drift", "flat_fall", "small_large")
WIDTH = 3
DIP_LONGEST = 5  # the generator's dips last 3-5 evaluations


def end_statistic(y: np.ndarray, sd: np.ndarray, width: int = WIDTH) -> float:
    """The largest z of a best block of `width` evaluations over any later final stretch, noise known."""
    y, v = np.asarray(y, dtype=float), np.asarray(sd, dtype=float) ** 2
    n = len(y)
    cy, cv = np.concatenate([[0.0], np.cumsum(y)]), np.concatenate([[0.0], np.cumsum(v)])
    best = -math.inf
    for j in range(width, n):  # the final stretch y[j:]
        m = n - j
        cur, vcur = (cy[n] - cy[j]) / m, (cv[n] - cv[j]) / m ** 2
        i = np.arange(0, j - width + 1)
        b, vb = (cy[i + width] - cy[i]) / width, (cv[i + width] - cv[i]) / width ** 2
        best = max(best, float(np.max((b - cur) / np.sqrt(vb + vcur))))
    return best


def dip_statistic(y: np.ndarray, sd: np.ndarray, width: int = WIDTH, longest: int = DIP_LONGEST) -> float:
    """The largest z of a best block of `width` evaluations over any later stretch of 1..`longest`, noise known."""
    y, v = np.asarray(y, dtype=float), np.asarray(sd, dtype=float) ** 2
    n = len(y)
    cy, cv = np.concatenate([[0.0], np.cumsum(y)]), np.concatenate([[0.0], np.cumsum(v)])
    best = -math.inf
    for j in range(width, n):  # the stretch y[j:j + m]
        i = np.arange(0, j - width + 1)
        b, vb = (cy[i + width] - cy[i]) / width, (cv[i + width] - cv[i]) / width ** 2
        for m in range(1, min(longest, n - j) + 1):
            cur, vcur = (cy[j + m] - cy[j]) / m, (cv[j + m] - cv[j]) / m ** 2
            best = max(best, float(np.max((b - cur) / np.sqrt(vb + vcur))))
    return best


def live_statistic(y: np.ndarray, var: np.ndarray, width: int = WIDTH, longest: int = 6) -> np.ndarray:
    """At each evaluation k, the largest z of a best block of `width` evaluations over the current level (the
    last 1..`longest` evaluations up to k), each evaluation's noise variance `var` known: the live scan's
    question asked by a test that knows the noise (-inf where no level can be judged yet)."""
    y, v = np.asarray(y, dtype=float), np.asarray(var, dtype=float)
    cy, cv = np.concatenate([[0.0], np.cumsum(y)]), np.concatenate([[0.0], np.cumsum(v)])
    out = np.full(len(y), -math.inf)
    for k in range(width, len(y)):
        for m in range(1, min(longest, k + 1 - width) + 1):
            j = k + 1 - m  # the current level y[j:k + 1]
            i = np.arange(0, j - width + 1)
            b, vb = (cy[i + width] - cy[i]) / width, (cv[i + width] - cv[i]) / width ** 2
            cur, vcur = (cy[k + 1] - cy[j]) / m, (cv[k + 1] - cv[j]) / m ** 2
            out[k] = max(out[k], float(np.max((b - cur) / np.sqrt(vb + vcur))))
    return out


def tiny_delays(n_runs: int, seed: int, healthy_runs: int = 1000, alpha: float = 0.01) -> dict:
    """The clairvoyant live delay on the tiny-model falls (benchmarks/detection.py): live_statistic with
    each evaluation's noise known exactly (the per-item chances given the items' persistent effects, under
    which evaluations are independent; paired tests can do no better), its threshold set so that `alpha` of
    tiny-healthy runs (seeds disjoint from validity.py's) ever cross it; the delay, counted as validity.py
    counts it, is the evaluations from the onset to the first crossing after it."""
    import detection

    def series(kind: str, s: int):
        run, onset = detection.make_run(kind, s)
        e = run.evals.sort("step")
        P = run.oracle
        return e["step"].to_numpy(), live_statistic(e["value"].to_numpy(), (P * (1 - P)).sum(axis=1) / P.shape[1] ** 2), onset

    peaks = [float(np.max(series("healthy", 9_500_000 + seed * 1_000_003 + i)[1])) for i in range(healthy_runs)]
    threshold = float(np.quantile(peaks, 1 - alpha))
    delays, found = [], 0
    for i in range(n_runs):
        steps, z, onset = series("decoupled", seed * 1_000_003 + i + 100_000)
        after = np.flatnonzero((steps > onset) & (z > threshold))
        if after.size:
            found += 1
            delays.append(math.ceil((int(steps[after[0]]) - onset) / detection.EVERY))
    return {"threshold": threshold, "found": found / n_runs, "median_delay": float(np.median(delays)) if delays else None,
            "healthy_runs": healthy_runs}


def _z(shape: str, seed: int, statistic=end_statistic) -> float:
    import shapes

    run, truth = shapes.make_shape_run(shape, seed)
    y = run.evals.sort("step")["value"].to_numpy()
    return statistic(y, np.asarray(truth["eval_sd"]))


def ceiling(n_runs: int, seed: int, healthy_runs: int = 1000, alpha: float = 0.01) -> dict:
    """Per slow decoupled shape, the clairvoyant share found at `alpha` false alarms on healthy_noisy (the
    threshold from `healthy_runs` runs of seeds disjoint from the shapes' own), on validity.py's seeds."""
    healthy = [_z("healthy_noisy", 9_000_000 + seed * 1_000_003 + i) for i in range(healthy_runs)]
    threshold = float(np.quantile(healthy, 1 - alpha))
    out = {"threshold": threshold, "healthy_runs": healthy_runs}
    for shape in FALLS:
        zs = [_z(shape, seed * 1_000_003 + 700_000 + i) for i in range(n_runs)]
        out[shape] = float(np.mean(np.array(zs) > threshold))
    healthy = [_z("healthy_noisy", 9_000_000 + seed * 1_000_003 + i, dip_statistic) for i in range(healthy_runs)]
    out["dip_threshold"] = float(np.quantile(healthy, 1 - alpha))
    zs = [_z("dip", seed * 1_000_003 + 700_000 + i, dip_statistic) for i in range(n_runs)]
    out["dip"] = float(np.mean(np.array(zs) > out["dip_threshold"]))
    return out
