"""Detector calibration on generated trajectories, beside a naive reward-only z-score alert.

Trajectories (seeded) mimic what the tiny-model runs show: per-step training reward with batch noise,
a held-out set of items whose correctness is correlated across evaluations (a Gaussian copula on a
latent skill, so paired tests see realistic item persistence), and per-step all-fail shares.

- healthy: reward and skill rise together (logistic ramps, random midpoint and rate), then plateau;
  some runs barely learn (both flat), some converge early.
- decoupled: healthy until a known onset, then skill declines while the reward holds or keeps rising.
- weak: most groups all-fail, reward near zero, skill flat.

Scores: false-alarm rate on healthy runs (any warning / critical alert), detection rate on decoupled
runs (an alert at or after the onset, before the end) and the median delay in evaluations after the
onset; the same for a naive tracker-style alert (reward more than 3 std from its trailing 20-step mean).

    python benchmarks/detection.py [--runs 200] [--seed 0] [--markdown]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
from scipy.special import expit
from scipy.stats import norm

EVERY, N_ITEMS, RHO = 10, 300, 0.7


def _trajectory(kind: str, rng: np.random.Generator):
    T = int(rng.integers(150, 400))
    t = np.arange(1, T + 1, dtype=float)
    mid, rate = rng.uniform(0.1, 0.5) * T, rng.uniform(0.02, 0.15)
    ramp = expit(rate * (t - mid))
    if kind == "weak":
        skill = np.full(T, rng.uniform(-4.5, -3.5))
        reward = np.clip(0.02 + rng.normal(0, 0.015, T), 0, 1)
        all_fail = np.clip(rng.uniform(0.78, 0.95) + rng.normal(0, 0.05, T), 0, 1)
        return T, t, skill, reward, all_fail, None
    gain = rng.choice([rng.uniform(0.0, 0.3), rng.uniform(0.5, 2.0)], p=[0.2, 0.8])  # some runs barely learn
    s0, r0 = rng.uniform(-1.0, 0.5), rng.uniform(0.2, 0.5)
    r_gain = gain * rng.uniform(0.08, 0.14)
    skill = s0 + gain * ramp
    reward = r0 + r_gain * ramp
    onset = None
    if kind == "decoupled":
        onset = int(rng.uniform(0.35, 0.65) * T)
        after = t > onset
        drop = rng.uniform(1.5, 5.0)  # skill lost by the end (logit units): 0.6 -> 0.1-0.4 accuracy
        skill = np.where(after, skill - drop * (t - onset) / (T - onset), skill)
        hold = rng.choice(["flat", "rise"])
        extra = rng.uniform(0.03, 0.12) if hold == "rise" else 0.0
        reward = np.where(after, reward + extra * (t - onset) / (T - onset), reward)
    noise = rng.uniform(0.04, 0.09)
    reward = reward + rng.normal(0, noise, T)
    all_fail = np.clip(0.45 - 0.2 * gain * ramp + rng.normal(0, 0.08, T), 0, 1)
    return T, t, skill, reward, all_fail, onset


def make_run(kind: str, seed: int) -> tuple[SimpleNamespace, int | None]:
    rng = np.random.default_rng(seed)
    T, t, skill, reward, all_fail, onset = _trajectory(kind, rng)
    difficulty = rng.normal(0, 1.5, N_ITEMS)
    persistent = rng.normal(0, 1, N_ITEMS)
    eval_steps = np.arange(0, T + 1, EVERY)
    evals, items = [], []
    for e in eval_steps:
        s = skill[max(0, int(e) - 1)]
        z = math.sqrt(RHO) * persistent + math.sqrt(1 - RHO) * rng.normal(0, 1, N_ITEMS)
        correct = norm.cdf(z) < expit(s - difficulty)
        evals.append({"step": int(e), "eval_set": "heldout", "metric": "accuracy", "bucket": "all",
                      "value": float(correct.mean()), "n": N_ITEMS, "wall_time": 0.0})
        items += [{"step": int(e), "eval_set": "heldout", "item": i, "bucket": "all", "correct": bool(c),
                   "completion": None} for i, c in enumerate(correct)]
    G = 8
    steps = pl.DataFrame({
        "step": t.astype(int), "reward_mean": reward, "func_mean": [[float(r)] for r in reward],
        "frac_all_fail": all_fail, "frac_all_pass": np.zeros(T), "frac_zero_signal": all_fail,
        "effective_batch": np.round((1 - all_fail) * 16 * G), "n_completions": np.full(T, 16 * G),
        "len_mean": np.full(T, 4.0), "frac_clipped": np.zeros(T),
    })
    from diag import schema

    run = SimpleNamespace(
        steps=steps, evals=schema.conform("evals", evals), eval_items=schema.conform("eval_items", items),
        groups=schema.empty("groups"), meta={"reward_funcs": ["reward"], "group_size": G}, name=f"{kind}-{seed}")
    # what no detector knows, for the clairvoyant delay (benchmarks/ceiling.py): each item's chance of being
    # right at each evaluation given its persistent effect (the evaluations are independent given it)
    q = expit(np.array([skill[max(0, int(e) - 1)] for e in eval_steps])[:, None] - difficulty[None, :])
    run.oracle = norm.cdf((norm.ppf(q) - math.sqrt(RHO) * persistent[None, :]) / math.sqrt(1 - RHO))
    return run, onset


def naive_alert_steps(reward: np.ndarray, window: int = 20, z: float = 3.0) -> list[int]:
    """A tracker-style threshold alert: the reward leaves its trailing mean by more than z std."""
    out = []
    for i in range(window, len(reward)):
        w = reward[i - window:i]
        sd = w.std()
        if sd > 0 and abs(reward[i] - w.mean()) > z * sd:
            out.append(i + 1)
    return out


def evals_after(onset: int, step: int) -> int:
    """Evaluations that happened after the onset up to and including the detecting one."""
    return step // EVERY - onset // EVERY


def score(n_runs: int, seed: int) -> dict:
    from diag.detect import detect_all

    res = {k: {"runs": 0, "alarms": 0, "detected": 0, "delays": [], "naive_alarms": 0, "naive_detected": 0,
               "naive_delays": [], "gap": 0} for k in ("healthy", "decoupled", "weak")}
    t0 = time.perf_counter()
    for kind, count in (("healthy", n_runs), ("decoupled", n_runs), ("weak", max(10, n_runs // 4))):
        for i in range(count):
            run, onset = make_run(kind, seed * 1_000_003 + ("healthy", "decoupled", "weak").index(kind) * 100_000 + i)
            findings = detect_all(run)
            r = res[kind]
            r["runs"] += 1
            dec = [f for f in findings if f.kind in ("decoupling", "reward_stall") and f.is_alert]
            r["gap"] += any(f.kind == "signal_gap" for f in findings)
            naive = naive_alert_steps(run.steps["reward_mean"].to_numpy())
            if kind == "decoupled":
                early = [f for f in dec if f.step < onset]
                late = [f for f in dec if f.step >= onset]
                r["alarms"] += bool(early)
                if late and not early:
                    r["detected"] += 1
                    r["delays"].append(evals_after(onset, late[0].step))
                n_early = [s for s in naive if s < onset]
                n_late = [s for s in naive if s >= onset]
                r["naive_alarms"] += bool(n_early)
                if n_late and not n_early:
                    r["naive_detected"] += 1
                    r["naive_delays"].append(n_late[0] / EVERY - onset / EVERY)
            else:
                r["alarms"] += bool(dec)
                r["naive_alarms"] += bool(naive)
    out = {"seconds": time.perf_counter() - t0}
    for kind, r in res.items():
        n = r["runs"]
        out[kind] = {
            "runs": n,
            "false_alarm_rate": r["alarms"] / n,
            "detection_rate": r["detected"] / n if kind == "decoupled" else None,
            "median_delay_evals": float(np.median(r["delays"])) if r["delays"] else None,
            "naive_false_alarm_rate": r["naive_alarms"] / n,
            "naive_detection_rate": r["naive_detected"] / n if kind == "decoupled" else None,
            "naive_median_delay_evals": float(np.median(r["naive_delays"])) if r["naive_delays"] else None,
            "signal_gap_rate": r["gap"] / n,
        }
    return out


def markdown(r: dict) -> str:
    f = lambda x: "-" if x is None else (f"{100 * x:.1f}%" if isinstance(x, float) and x <= 1 else f"{x}")  # noqa: E731
    d = lambda x: "-" if x is None else f"{x:.1f}"  # noqa: E731
    lines = ["| trajectories | runs | grpo-diag false alarms | grpo-diag detection | median delay (evals) "
             "| naive z-score false alarms | naive detection | naive delay | signal-gap alert |",
             "|---|---|---|---|---|---|---|---|---|"]
    for kind in ("healthy", "decoupled", "weak"):
        x = r[kind]
        lines.append(f"| {kind} | {x['runs']} | {f(x['false_alarm_rate'])} | {f(x['detection_rate'])} | "
                     f"{d(x['median_delay_evals'])} | {f(x['naive_false_alarm_rate'])} | "
                     f"{f(x['naive_detection_rate'])} | {d(x['naive_median_delay_evals'])} | {f(x['signal_gap_rate'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", action="store_true")
    a = p.parse_args(argv)
    r = score(a.runs, a.seed)
    print(markdown(r) if a.markdown else r)
    print(f"({r['seconds']:.1f} s)")
    return r


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
