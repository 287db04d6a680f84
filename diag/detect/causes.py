"""The cause next to the symptom: what else changed in the run's own scalars, with numbers.

A decoupling or a signal gap says *that* the reward stopped teaching the task; the trainer's scalars
often say *how*: completions that grow to the length cap (the clipped share jumps) or collapse under an
overlong penalty, entropy that collapses, runs of exactly-zero gradient on dead batches, KL that keeps
growing. Each is judged against the run's own start (the first tenth of its steps), on a rolling mean,
and reported as information, never as an alert on its own: on healthy public runs lengths grow and
clipped shares jump too (a warning there would cry wolf). The decoupling, stall and signal-gap findings
cite the ones whose window overlaps theirs, which is where they explain something.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from diag.detect.base import Finding, no_data
from diag.summary import once_per_step

# the keys each series goes by in the logs the importers read (TRL, verl, tinker, the recorder's own)
SOURCES = {
    "length": ("len_mean",),
    "clipped": ("frac_clipped",),
    "entropy": ("entropy", "actor/entropy", "optim/entropy", "actor/entropy_loss"),
    "grad_norm": ("grad_norm", "actor/grad_norm"),
    "kl": ("kl", "actor/kl_loss", "critic/kl", "objective/kl"),
}
ENABLES = {"length": "completion length blow-up or collapse", "clipped": "the clipped share's jump",
           "entropy": "entropy collapse", "grad_norm": "zero-gradient steps", "kl": "KL growth"}


@dataclass(frozen=True)
class CauseParams:
    baseline_share: float = 0.1  # the first tenth of the run (at least `min_baseline` steps) is its start
    min_baseline: int = 5
    min_steps: int = 20  # fewer logged steps: nothing is judged
    length_up: float = 1.5  # rolling mean length at least this times the start: a blow-up
    length_down: float = 0.65  # at most this times the start: a collapse (8.9k -> 5.4k tokens is 0.61)
    clipped_rise: float = 0.2  # clipped share up by at least this (absolute)
    entropy_down: float = 0.3  # entropy at most this times its start
    zero_grad_share: float = 0.05  # steps with a gradient norm of exactly zero
    kl_up: float = 10.0  # KL at least this times its start ...
    kl_min: float = 0.05  # ... and at least this much


def series(steps: pl.DataFrame) -> dict[str, tuple[str, np.ndarray, np.ndarray]]:
    """name -> (the log's key, steps, values) for every cause series the run has (finite values only)."""
    s = once_per_step(steps)
    out = {}
    for name, keys in SOURCES.items():
        for key in keys:
            if key in s.columns:
                v = s[key].cast(pl.Float64, strict=False).to_numpy()
                ok = np.isfinite(v)
                if ok.sum():
                    out[name] = (key, s["step"].to_numpy()[ok].astype(int), v[ok])
                    break
    return out


def _smooth(v: np.ndarray) -> np.ndarray:
    """Moving mean over a twentieth of the run (at least 3 steps), each full window once: differences of a
    running sum (a convolution costs steps x window, 0.05 s a series at 100k steps)."""
    w = max(3, len(v) // 20)
    if len(v) < w:
        return np.empty(0)
    c = np.concatenate([[0.0], np.cumsum(v, dtype=float)])
    return (c[w:] - c[:-w]) / w


def _cause(kind: str, sev: str, steps: np.ndarray, onset_i: int, msg: str, ev: dict) -> Finding:
    return Finding(kind=kind, severity=sev, step=int(steps[-1]), onset=int(steps[onset_i]),
                   window_start=int(steps[onset_i]), window_end=int(steps[-1]), message=msg, evidence=ev)


def _judge_ratio(name: str, key: str, st: np.ndarray, v: np.ndarray, p: CauseParams) -> list[Finding]:
    nb = max(p.min_baseline, int(len(v) * p.baseline_share))
    base = float(np.mean(v[:nb]))
    sm = _smooth(v)
    offset = len(v) - len(sm)  # a smoothed value i covers steps i..i+offset
    out = []
    if name == "length" and base > 0:
        hi, lo = int(np.argmax(sm)), int(np.argmin(sm))
        if sm[hi] >= p.length_up * base:
            first = int(np.argmax(sm >= base + (sm[hi] - base) / 2)) + offset
            out.append(_cause("length_blowup", "info", st, first,
                              f"Mean completion length grew {base:.0f} -> {sm[hi]:.0f} tokens ({sm[hi] / base:.1f}x the run's "
                              f"start, rolling mean; '{key}'), half of it by step {st[first]}.",
                              {"key": key, "start": base, "peak": float(sm[hi]), "end": float(sm[-1])}))
        if sm[lo] <= p.length_down * base and lo + offset > nb:
            first = int(np.argmax(sm <= base - (base - sm[lo]) / 2)) + offset
            out.append(_cause("length_collapse", "info", st, first,
                              f"Mean completion length fell {base:.0f} -> {sm[lo]:.0f} tokens ({sm[lo] / base:.2f}x the run's "
                              f"start; '{key}'), half of it by step {st[first]} (an overlong penalty or a "
                              "shortcut answer).", {"key": key, "start": base, "low": float(sm[lo]), "end": float(sm[-1])}))
    elif name == "clipped":
        hi = int(np.argmax(sm))
        if sm[hi] - base >= p.clipped_rise:
            first = int(np.argmax(sm >= base + (sm[hi] - base) / 2)) + offset
            out.append(_cause("clipped_jump", "info", st, first,
                              f"The share of completions cut at the length cap rose {100 * base:.0f}% -> {100 * sm[hi]:.0f}% "
                              f"(rolling mean; '{key}') from step {st[first]}: the reward judges truncated answers.",
                              {"key": key, "start": base, "peak": float(sm[hi]), "end": float(sm[-1])}))
    elif name == "entropy" and base > 0:
        if sm[-1] <= p.entropy_down * base:
            first = int(np.argmax(sm <= base * (1 + p.entropy_down) / 2)) + offset
            out.append(_cause("entropy_collapse", "info", st, first,
                              f"Policy entropy fell {base:.3g} -> {sm[-1]:.3g} ({sm[-1] / base:.2f}x the run's start; '{key}'), "
                              f"half-way by step {st[first]}: the policy samples ever fewer distinct answers, so groups "
                              "tie more often.", {"key": key, "start": base, "end": float(sm[-1])}))
    elif name == "kl":
        if sm[-1] >= max(p.kl_up * max(base, 0.0), p.kl_min):
            first = int(np.argmax(sm >= (base + sm[-1]) / 2)) + offset
            out.append(_cause("kl_growth", "info", st, first,
                              f"KL to the reference grew {base:.3g} -> {sm[-1]:.3g} (rolling mean; '{key}') from step "
                              f"{st[first]}: the policy moves far from where it started.",
                              {"key": key, "start": base, "end": float(sm[-1])}))
    return out


def _zero_grad(key: str, st: np.ndarray, v: np.ndarray, p: CauseParams) -> list[Finding]:
    zero = v == 0
    share = float(zero.mean())
    if share < p.zero_grad_share:
        return []
    runs, cur = 0, 0
    for z in zero:
        cur = cur + 1 if z else 0
        runs = max(runs, cur)
    first = int(np.argmax(zero))
    return [_cause("zero_grad", "info", st, first,
                   f"{int(zero.sum())} of {len(v)} steps ({100 * share:.0f}%) had a gradient norm of exactly zero ('{key}'; "
                   f"longest run {runs} steps, first at step {st[first]}): batches whose groups all tied taught nothing.",
                   {"key": key, "zero_steps": int(zero.sum()), "share": share, "longest_run": runs})]


def detect_causes(steps: pl.DataFrame, params: CauseParams | None = None) -> list[Finding]:
    """Cause findings from the run's scalars, and one `no_data` finding naming the keys that would
    enable the checks the log could not have."""
    p = params or CauseParams()
    have = series(steps) if steps.height else {}
    out: list[Finding] = []
    for name, (key, st, v) in have.items():
        if len(v) < p.min_steps:
            continue
        out += _zero_grad(key, st, v, p) if name == "grad_norm" else _judge_ratio(name, key, st, v, p)
    missing = [n for n in SOURCES if n not in have]
    if missing:
        last = int(steps["step"].max()) if steps.height and steps["step"].max() is not None else 0
        keys = "; ".join(f"{ENABLES[n]}: {' or '.join(repr(k) for k in SOURCES[n])}" for n in missing)
        out.append(no_data(last, "causes", f"Not enough data to judge these causes, for want of a logged series: {keys}."))
    return out


def cite(finding: Finding, causes: list[Finding], last_step: int | None = None) -> Finding:
    """The finding with the causes whose window overlaps its own named in its message and evidence (a
    finding still firing spans to `last_step`, the end of what was seen; a resolved one to its
    resolution)."""
    lo, hi = finding.window_start, finding.window_end
    if lo is None or hi is None:
        return finding
    if finding.state == "firing" and last_step is not None:
        hi = max(hi, last_step)
    elif finding.state == "resolved" and finding.resolved_step is not None:
        hi = max(hi, finding.resolved_step)  # the episode lasted until it resolved
    near = [c for c in causes if c.kind != "no_data" and c.onset is not None and c.onset <= hi and c.window_end >= lo]
    if not near:
        return finding
    text = " ".join(c.message for c in near)
    return finding.with_note(f" Seen in the same window: {text}", causes=[c.kind for c in near])


def cause_kinds() -> tuple[str, ...]:
    return ("length_blowup", "length_collapse", "clipped_jump", "entropy_collapse", "zero_grad", "kl_growth")


__all__ = ["CauseParams", "detect_causes", "cite", "cause_kinds", "series"]
