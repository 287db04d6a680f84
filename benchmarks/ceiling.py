"""The clairvoyant ceiling of the generated shapes: how often *any* end-of-run verdict could find a fall.

A detector that knows what no detector can, every evaluation's true noise sd (sampling at the clean
accuracy plus the checkpoint variation the generator drew), judges each run once at its end: the largest
standardised gap between a best block of three evaluations and the mean of any final stretch,

    z = max over (best block b before stretch c) of (mean b - mean c) / sqrt(var b + var c),

with its threshold set so that exactly 1% of healthy_noisy runs (the false-alarm target) cross it. The share
of each slow decoupled shape above that threshold bounds what a verdict with the same false alarms can
reach without knowing the noise (benchmarks/validity.py prints it beside grpo-diag's figures). It knows no
onset and no reward; a dip (a transient) and the format stall are not end-of-run falls and get none.
"""

from __future__ import annotations

import math

import numpy as np

FALLS = ("drift", "flat_fall", "small_large")
WIDTH = 3


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


def _z(shape: str, seed: int) -> float:
    import shapes

    run, truth = shapes.make_shape_run(shape, seed)
    y = run.evals.sort("step")["value"].to_numpy()
    return end_statistic(y, np.asarray(truth["eval_sd"]))


def ceiling(n_runs: int, seed: int, healthy_runs: int = 1000, alpha: float = 0.01) -> dict:
    """Per slow decoupled shape, the clairvoyant share found at `alpha` false alarms on healthy_noisy (the
    threshold from `healthy_runs` runs of seeds disjoint from the shapes' own), on validity.py's seeds."""
    healthy = [_z("healthy_noisy", 9_000_000 + seed * 1_000_003 + i) for i in range(healthy_runs)]
    threshold = float(np.quantile(healthy, 1 - alpha))
    out = {"threshold": threshold, "healthy_runs": healthy_runs}
    for shape in FALLS:
        zs = [_z(shape, seed * 1_000_003 + 700_000 + i) for i in range(n_runs)]
        out[shape] = float(np.mean(np.array(zs) > threshold))
    return out
