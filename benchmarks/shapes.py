"""A second generator: the shapes real decoupled runs take, with known onsets (benchmarks/validity.py).

benchmarks/detection.py draws tiny-model-like runs (falls of 1.5-5 logits, a paired 300-item set).
Real decoupled runs on strong models look different (diag/detect/decoupling.py's module notes): small,
slow falls under a reward that holds, evaluations that move by a point or two between checkpoints
whatever the eval size, sets of 32 to 5,000 items, logs without per-item results or even eval sizes.
Each shape below is one of those, drawn from its own ranges; `expect` says what a right verdict is.

Falls are drawn in units of one evaluation's noise (sampling at the eval size plus checkpoint-to-
checkpoint variation): a fall smaller than the noise tests no detector, only luck.

- drift: accuracy peaks, then drifts down 3-6 noise sd over 70-90% of the rest of the run while the
  reward keeps rising; 500-5,000 items, checkpoint noise 1-2 points (the 7B-on-MATH shape).
- flat_fall: the reward holds (it loses at most a fifth of accuracy's share) while accuracy falls 3-6 sd within 3-10
  evaluations and stays there.
- small_large: the same under a flat reward on 1,319-5,000 greedy items (a 2-5 point fall).
- dip: a 3.5-6 sd dip over 3-5 evaluations that recovers fully: an episode that must resolve.
- format: a second reward component (format) carries the rise while accuracy stays flat (32-300
  items): a stall naming 'format'.
- collapse: accuracy loses 30-80% of its level within 3-8 evaluations and the reward a comparable
  share (0.8-1.2 times): not a deceptive reward; no critical decoupling alert and none firing at the end
  (a warning at the first fall, withdrawn when the reward is seen falling with it, is allowed).
- healthy_noisy: rise then plateau, 32-5,000 items, checkpoint noise, no per-item results: no alert.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import polars as pl
from scipy.special import expit, logit

EVERY = 10
SHAPES = ("drift", "flat_fall", "small_large", "dip", "format", "collapse", "healthy_noisy")
EXPECT = {"drift": "decoupling_firing", "flat_fall": "decoupling_firing", "small_large": "decoupling_firing",
          "dip": "decoupling_resolved", "format": "stall_warning", "collapse": "no_decoupling",
          "healthy_noisy": "no_alert"}


def _ramp(t, T, rng):
    mid, rate = rng.uniform(0.05, 0.25) * T, rng.uniform(0.03, 0.12)
    return expit(rate * (t - mid))


ITEMS = {"drift": (500, 1319, 5000), "flat_fall": (500, 1024, 1319), "small_large": (1319, 5000),
         "dip": (500, 1319, 4000), "format": (32, 100, 300), "collapse": (32, 200, 500, 1319, 5000),
         "healthy_noisy": (32, 200, 500, 1319, 5000)}
CHECKPOINT = {"drift": (0.01, 0.02), "small_large": (0.003, 0.008)}  # accuracy sd between checkpoints


def _curves(shape: str, rng: np.random.Generator, noise_sd: float):
    """(steps, accuracy per step before eval noise, rewards per step [T x funcs], onset, end of a dip).

    A decoupled shape's fall is drawn in units of one evaluation's noise (3-6 sd for the slow falls,
    3.5-6 sd for a dip): a fall smaller than the noise tests no detector, only luck."""
    T = int(rng.integers(150, 320))
    t = np.arange(1, T + 1, dtype=float)
    ramp = _ramp(t, T, rng)
    a0 = rng.uniform(0.2, 0.85)
    gain = rng.uniform(0.03, 0.12) * (1 - a0) / 0.5
    acc = np.clip(a0 + gain * ramp, 0.02, 0.98)
    r0, r_gain = rng.uniform(0.2, 0.7), rng.uniform(0.03, 0.12)
    reward = r0 + r_gain * ramp
    fmt = np.full(T, rng.uniform(0.1, 0.4))
    onset = end = None
    if shape in ("drift", "flat_fall", "small_large", "dip", "collapse"):
        onset = int(rng.uniform(0.25, 0.55) * T)
        after = np.clip((t - onset) / (T - onset), 0, 1)
        peak = acc[onset - 1]
        if shape == "collapse":  # 30-80% of the level lost within 3-8 evaluations
            after = np.clip((t - onset) / (int(rng.integers(3, 9)) * EVERY), 0, 1)
            fall = rng.uniform(0.3, 0.8) * peak
        elif shape == "dip":
            fall = rng.uniform(3.5, 6.0) * noise_sd
        else:  # the fall is complete 3-10 evaluations (drift: 70-90% of the rest) in, and holds after
            fall = rng.uniform(3.0, 6.0) * noise_sd
            span = rng.uniform(0.7, 0.9) * (T - onset) if shape == "drift" else int(rng.integers(3, 11)) * EVERY
            after = np.clip((t - onset) / span, 0, 1)
        fall = min(fall, 0.9 * peak)
        if shape == "dip":
            end = onset + int(rng.integers(3, 6)) * EVERY
            acc = acc - fall * ((t > onset) & (t <= end))
        else:
            acc = np.where(t > onset, peak - fall * after, acc)
        if shape == "drift":
            reward = reward + rng.uniform(0.03, 0.1) * after
        elif shape == "flat_fall":
            # the reward holds: it loses at most a fifth of the share of its level that accuracy loses
            reward = np.where(t > onset, reward[onset - 1] * (1 - rng.uniform(0, 0.2) * fall / peak * after), reward)
        elif shape == "small_large":
            reward = np.where(t > onset, reward[onset - 1], reward)
        elif shape == "collapse":  # the reward loses a comparable share of its level
            share = fall / peak
            reward = np.where(t > onset, reward[onset - 1] * (1 - share * rng.uniform(0.8, 1.2) * after), reward)
    if shape == "format":
        acc = np.full(T, a0)
        onset = int(rng.uniform(0.2, 0.4) * T)
        fmt = fmt + rng.uniform(0.15, 0.4) * np.clip((t - onset) / (T - onset), 0, 1)
        reward = np.full(T, r0)
    funcs = np.stack([reward, fmt], axis=1) if shape == "format" else reward[:, None]
    return T, t, acc, funcs, onset, end


def make_shape_run(shape: str, seed: int) -> tuple[SimpleNamespace, dict]:
    rng = np.random.default_rng(seed)
    n_items = int(rng.choice(ITEMS[shape]))
    checkpoint = rng.uniform(*CHECKPOINT.get(shape, (0.005, 0.015)))
    noise_sd = math.sqrt(0.25 / n_items + checkpoint ** 2)  # one evaluation's noise near 50% accuracy
    T, t, acc, funcs, onset, end = _curves(shape, rng, noise_sd)
    funcs = funcs + rng.normal(0, rng.uniform(0.02, 0.06), funcs.shape)
    reward = funcs.sum(axis=1)
    with_items = shape != "healthy_noisy" and rng.random() < 0.4 and n_items <= 1319
    with_n = with_items or rng.random() < 0.6
    difficulty = rng.normal(0, 1.5, n_items) if with_items else None
    evals, items = [], []
    # each evaluation's true noise sd (sampling at its clean accuracy plus checkpoint variation): known to the
    # generator alone, for the clairvoyant ceiling (benchmarks/ceiling.py)
    clean = np.clip(acc[np.arange(EVERY, T + 1, EVERY) - 1], 0.005, 0.995)
    eval_sd = np.sqrt(clean * (1 - clean) / n_items + checkpoint ** 2).tolist()
    for e in np.arange(EVERY, T + 1, EVERY):
        p = float(np.clip(acc[int(e) - 1] + rng.normal(0, checkpoint), 0.005, 0.995))
        if with_items:
            shift = _calibrate(difficulty, p)
            correct = rng.random(n_items) < expit(shift - difficulty)
            value = float(correct.mean())
            items += [{"step": int(e), "eval_set": "heldout", "item": i, "bucket": "all", "correct": bool(c),
                       "completion": None} for i, c in enumerate(correct)]
        else:
            value = float(rng.binomial(n_items, p) / n_items)
        evals.append({"step": int(e), "eval_set": "heldout", "metric": "accuracy", "bucket": "all", "value": value,
                      "n": n_items if with_n else None, "wall_time": 0.0})
    names = ["accuracy", "format"] if shape == "format" else ["reward"]
    steps = pl.DataFrame({
        "step": t.astype(int), "reward_mean": reward, "func_mean": [list(map(float, f)) for f in funcs],
        "frac_all_fail": np.full(T, 0.2), "frac_all_pass": np.full(T, 0.2), "frac_zero_signal": np.full(T, 0.4),
        "effective_batch": np.full(T, 77), "n_completions": np.full(T, 128),
        "len_mean": np.full(T, 200.0), "frac_clipped": np.zeros(T)})
    from diag import schema

    run = SimpleNamespace(steps=steps, evals=schema.conform("evals", evals),
                          eval_items=schema.conform("eval_items", items) if items else schema.empty("eval_items"),
                          groups=schema.empty("groups"), meta={"reward_funcs": names, "group_size": 8},
                          name=f"{shape}-{seed}")
    return run, {"shape": shape, "onset": onset, "end": end, "expect": EXPECT[shape], "n_items": n_items,
                 "items": with_items, "n_known": with_n, "eval_sd": eval_sd}


def _calibrate(difficulty: np.ndarray, p: float) -> float:
    """The skill at which the expected accuracy over these items is p (a few Newton steps)."""
    s = float(logit(p))
    for _ in range(20):
        q = expit(s - difficulty)
        f, df = q.mean() - p, (q * (1 - q)).mean()
        if abs(f) < 1e-6 or df <= 0:
            break
        s -= f / df
    return s


def verdict(findings, truth: dict, live=None) -> dict:
    """Right or wrong for one generated run (`findings`: check's verdict), with the delay in evaluations
    from the onset to the first alert the live monitor raised (`live`: the scan without the end-of-run
    hindsight; None: `findings`' own). A verdict found only at the end has no delay: it is not counted."""
    alerts = [f for f in findings if f.is_alert]
    dec = [f for f in alerts if f.kind == "decoupling"]
    onset, expect = truth["onset"], truth["expect"]
    early = [f for f in alerts if onset is not None and f.step <= onset]
    out = {"false_alarm": bool(early), "right": False, "delay": None, "alerts": len(alerts), "firing_at_end": None}
    if expect in ("no_alert", "no_decoupling", "signal_gap_only"):  # a quiet kind: any warning of any kind still
        # firing at the end is a false alarm to its user (a weak run's own signal gap excepted)
        out["firing_at_end"] = any(f.firing and not (expect == "signal_gap_only" and f.kind in ("signal_gap", "saturated"))
                                   for f in alerts)
    if expect == "no_alert":
        out.update(false_alarm=bool(alerts), right=not alerts)
    elif expect == "signal_gap_only":  # a weak run: its gap, and no word of a deceptive reward
        wrong = [f for f in alerts if f.kind in ("decoupling", "reward_stall")]
        out.update(false_alarm=bool(wrong), right=not wrong and any(f.kind == "signal_gap" for f in alerts))
    elif expect == "no_decoupling":  # a warning withdrawn once the reward is seen falling too is allowed
        wrong = [f for f in dec if f.firing or f.severity == "critical"]
        out.update(false_alarm=bool(wrong), right=not wrong)
    elif expect == "stall_warning":
        st = [f for f in alerts if f.kind == "reward_stall" and f.step > onset]
        out["right"] = bool(st) and not early and "'format'" in st[0].message
        first = _first_after(live, "reward_stall", onset, st)
        out["delay"] = (first.step - onset) / EVERY if first is not None else None
    else:
        late = [f for f in dec if f.step > onset]
        if expect == "decoupling_firing":
            out["right"] = bool(late) and not early and late[-1].firing
        else:  # a dip: found while it lasts, resolved by the end
            out["right"] = bool(late) and not early and all(not f.firing for f in late) and late[0].step <= truth["end"] + 3 * EVERY
        first = _first_after(live, "decoupling", onset, late)
        out["delay"] = math.ceil((first.step - onset) / EVERY) if first is not None else None
    return out


def _first_after(live, kind: str, onset: int, found: list):
    """The first alert of `kind` after the onset among the live findings (or `found`'s first)."""
    if live is None:
        return found[0] if found else None
    return next((f for f in live if f.is_alert and f.kind == kind and f.step > onset), None) if found else None


__all__ = ["SHAPES", "EXPECT", "make_shape_run", "verdict"]
