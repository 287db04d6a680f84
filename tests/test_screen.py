"""The linear-time judgement (diag.detect.screen, the vectorised alignment) gives the scan's own findings.

The old scan judged every evaluation in Python; the screened one skips the evaluations its vectorised
bound shows can hold nothing. Compared finding for finding (kind, severity, steps, state, message, every
number of the evidence to 1e-9) with the unscreened scan on the generated validity shapes, random long
runs (falls, recoveries, missing values, per-item results of mixed counts, a second held-out set), and
the real runs of ../shared/real_logs, each at several history lengths so the screen judges most of their
evaluations. The alignment is compared with the loop it replaced.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import replace

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings, strategies as st

import diag
from diag.detect import screen
from diag.detect.align import _half_spacing, align, build, window_means
from diag.detect.decoupling import DecouplingParams, DecouplingScanner, detect_decoupling
from diag.detect.replay import DecouplingReplay
from tests.conftest import real_logs_dir


def _same(x, y) -> bool:
    if isinstance(x, float) or isinstance(y, float):
        if x is None or y is None:
            return x is y
        return (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(x, dict):
        return x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)):
        return len(x) == len(y) and all(_same(u, v) for u, v in zip(x, y))
    return x == y


def assert_same_scan(a, p: DecouplingParams, name: str) -> int:
    old = DecouplingScanner(p, screen=False).judge_all(a, 0)
    new = DecouplingScanner(p).judge_all(a, 0)
    assert len(old) == len(new), (name, [f.message for f in old], [f.message for f in new])
    for f, g in zip(old, new):
        assert _same(f.__dict__, g.__dict__), (name, f, g)
    return len(old)


def random_run(seed: int, E: int = 220):
    """A long run: a rise, then falls and recoveries of random size, length and place; per-item results (some
    evaluations with another item count or none), eval sizes or neither; missing evaluations; a format
    component that may carry a rise; sometimes a second held-out set."""
    rng = np.random.default_rng(seed)
    steps = np.arange(10, 10 * E + 1, 10)
    acc = 0.3 + 0.3 * (1 - np.exp(-np.arange(E) / 20))
    for _ in range(rng.integers(0, 4)):
        at, size, dur = rng.integers(10, E), rng.uniform(0.03, 0.25), rng.integers(2, 60)
        acc[at:at + dur] -= size
    n_items = int(rng.choice([32, 100, 500]))
    obs = np.clip(acc + rng.normal(0, rng.uniform(0.0, 0.02), E), 0.01, 0.99)
    items, mode = {}, int(rng.integers(0, 3))
    if mode == 0:
        for i, s in enumerate(steps):
            count = n_items if rng.random() > 0.05 else int(rng.choice([n_items // 2, 0]))
            if count:
                items[int(s)] = rng.random(count) < obs[i]
                obs[i] = items[int(s)].mean()
    else:
        obs = rng.binomial(n_items, obs) / n_items
    n = np.full(E, float(n_items)) if mode != 2 else np.full(E, np.nan)
    n[rng.random(E) < 0.03] = np.nan
    obs[rng.random(E) < 0.02 * rng.integers(0, 2)] = np.nan
    T = 10 * E
    base = {0: np.linspace(0.2, 0.8, T), 1: np.full(T, 0.5), 2: np.linspace(0.8, 0.3, T)}[int(rng.integers(0, 3))]
    funcs = np.stack([base + rng.normal(0, 0.05, T), np.linspace(0.0, rng.uniform(0, 0.5), T) + rng.normal(0, 0.02, T)], 1)
    series = {"reward": funcs.sum(1), "length": np.full(T, 100.0), "clipped": np.zeros(T)}
    other = {"other": (np.clip(acc + rng.normal(0, 0.03, E), 0, 1), np.full(E, 200.0))} if rng.random() < 0.3 else {}
    return build("heldout", steps, obs, n, np.arange(1, T + 1, dtype=float), series, funcs, ["accuracy", "format"],
                 items, other)


def test_the_screened_scan_matches_the_scan_on_random_long_runs():
    events = 0
    for seed in range(12):
        a = random_run(seed)
        for history in (16, 64):
            events += assert_same_scan(a, replace(DecouplingParams(), history=history), f"random-{seed}-{history}")
    assert events > 30  # the runs raise, escalate and resolve episodes: the comparison is not of empty lists


def test_the_screened_scan_matches_the_scan_on_the_generated_shapes():
    from benchmarks.shapes import SHAPES, make_shape_run

    events = 0
    for shape in SHAPES:
        for seed in range(3):
            run, _ = make_shape_run(shape, seed)
            a = align(run.steps, run.evals, run.eval_items, run.meta["reward_funcs"])
            for history in (12, 16, 64):
                events += assert_same_scan(a, replace(DecouplingParams(), history=history), f"{shape}-{seed}")
    assert events > 20


def test_the_screened_scan_matches_the_scan_on_the_real_runs(tmp_path):
    from benchmarks.validity import LABELS
    from diag.importers import import_log

    logs = real_logs_dir()
    if not logs.is_dir():
        pytest.skip(f"{logs} is absent")
    labels = tomllib.loads(LABELS.read_text())["run"]
    for entry in labels:
        path, _ = import_log(logs / entry["path"], fmt=entry.get("format", "auto"), name=entry["name"],
                             root=str(tmp_path), profile=entry.get("profile"), eval_size=entry.get("eval_size"))
        run = diag.open_run(path)
        a = align(run.steps, run.evals, run.eval_items, list(run.meta.get("reward_funcs", [])))
        for history in (12, 16, 64):
            assert_same_scan(a, replace(DecouplingParams(), history=history), entry["name"])


def test_the_screen_skips_most_evaluations_of_a_healthy_long_run_and_replay_agrees():
    rng = np.random.default_rng(3)
    E, T = 1500, 15000
    items = {int(s): rng.random(200) < 0.5 for s in range(10, T + 1, 10)}
    acc = np.array([v.mean() for v in items.values()])
    series = {"reward": 0.5 + rng.normal(0, 0.05, T), "length": np.full(T, 50.0), "clipped": np.zeros(T)}
    a = build("heldout", np.arange(10, T + 1, 10), acc, np.full(E, 200.0), np.arange(1, T + 1, dtype=float), series,
              series["reward"][:, None], ["reward"], items)
    p = DecouplingParams()
    fall, stall = screen.marks(a, p, range(E))
    assert fall.mean() < 0.2 and stall.mean() < 0.2  # the point of it: most evaluations are never judged one by one
    assert_same_scan(a, p, "healthy")
    replay, whole = DecouplingReplay(p), detect_decoupling(a, p)
    for size in (700, 1100, E):  # a growing run judged in three calls: the scan from the start's findings
        got = detect_decoupling(a.head(size), p, replay)
    assert [f.__dict__ for f in got] == [f.__dict__ for f in whole]


def test_window_means_are_the_loops_they_replaced():
    def loop(step_axis, values, eval_steps):
        half = _half_spacing(eval_steps)
        out = np.full((len(eval_steps),) + values.shape[1:], np.nan)
        for i, e in enumerate(eval_steps):
            lo, hi = np.searchsorted(step_axis, e - half, "right"), np.searchsorted(step_axis, e + half, "right")
            if hi > lo:
                chunk = values[lo:hi]
                ok = np.isfinite(chunk)
                cnt = ok.sum(axis=0)
                out[i] = np.where(cnt > 0, np.where(ok, chunk, 0).sum(axis=0) / np.maximum(cnt, 1), np.nan)
        return out

    rng = np.random.default_rng(0)
    for t in range(1500):  # uneven and overlapping windows, steps outside the run, missing values, 1-d and 2-d
        axis = np.unique(rng.integers(0, 200, rng.integers(0, 60))).astype(float)
        evals = np.sort(rng.choice(np.arange(-5, 210), rng.integers(0, 20), replace=False)).astype(float)
        v = rng.normal(size=(len(axis),) + ((int(rng.integers(1, 4)),) if t % 2 else ()))
        v[rng.random(v.shape) < (1.0 if t % 5 == 0 else 0.2)] = np.nan
        want, got = loop(axis, v, evals), window_means(axis, v, evals)
        assert want.shape == got.shape and np.array_equal(np.isnan(want), np.isnan(got))
        assert np.allclose(want, got, rtol=1e-12, atol=1e-12, equal_nan=True)


def test_per_item_results_keep_each_items_first_record_by_step():
    rows = [{"step": s, "eval_set": "heldout", "item": i, "bucket": "all", "correct": bool((s + i + r) % 2),
             "completion": None} for s in (20, 10) for r in (0, 1) for i in (2, 0, 1)]  # each evaluation twice
    rows.append({"step": 10, "eval_set": "other", "item": 0, "bucket": "all", "correct": True, "completion": None})
    items = diag.schema.conform("eval_items", rows)
    evals = diag.schema.conform("evals", [{"step": s, "eval_set": "heldout", "metric": "accuracy", "bucket": "all",
                                           "value": 0.5, "n": 3, "wall_time": 0.0} for s in (10, 20)])
    steps = pl.DataFrame({"step": [10, 20], "reward_mean": [0.1, 0.2]})
    a = align(steps, evals, items, [])
    want = {s: np.array([bool((s + i) % 2) for i in (0, 1, 2)]) for s in (10, 20)}  # first record (r = 0), by item
    assert sorted(a.items) == [10, 20] and all(np.array_equal(a.items[s], want[s]) for s in want)
    other = evals.with_columns(pl.lit("another").alias("eval_set"))  # items recorded for other sets only
    assert align(steps, other, items, []).items == {}


def _pushed(steps, values, window, threshold, hysteresis, eff):
    """The monitor's state machine, one push per step: the reference `signal_gap.episodes` replaces."""
    from diag.detect.signal_gap import RollingShare

    r, out = RollingShare(window, threshold, hysteresis), []
    for st_, v, e in zip(steps, values, eff):
        if r.push(int(st_), float(v), float(e), 2 * float(e)) == "end":
            out.append((r.episode, int(st_)))
            r.episode = None
    return out + ([(r.episode, None)] if r.episode is not None else [])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 16).map(lambda k: k / 16), st.just(math.nan)), min_size=0, max_size=120),
       st.integers(1, 25), st.sampled_from([0.5, 0.6, 0.85]), st.sampled_from([0.0, 0.1, 0.25]))
def test_signal_gap_episodes_equal_the_monitors_pushes(values, window, threshold, hysteresis):
    """Shares on a grid of sixteenths (means land exactly on the thresholds), gaps of missing values: the
    whole-run replay opens and closes the same episodes, with the same steps, numbers and lists."""
    from diag.detect.signal_gap import episodes

    steps = np.arange(len(values)) * 2 + 1
    x = np.array(values, dtype=float)
    eff = np.arange(len(values), dtype=float)
    got = episodes(steps, x, window, threshold, hysteresis, eff, 2 * eff)
    want = _pushed(steps, x, window, threshold, hysteresis, eff)
    assert _same([(vars(e), end) for e, end in got], [(vars(e), end) for e, end in want])
