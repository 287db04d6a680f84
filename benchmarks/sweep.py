"""The sweep that chose the decoupling detector's thresholds (diag.detect.decoupling.DecouplingParams).

Both generators (benchmarks/detection.py: tiny-model-like runs; benchmarks/shapes.py: the shapes real
decoupled runs take) are drawn once with seeds disjoint from the validity benchmark's, aligned once,
and judged under every parameter set of the grid. A set qualifies when its false-alarm rate is at most
1% on every healthy, weak (a decoupling or stall alert on a run with no signal) and collapse kind (when none
does, all compete); among those the one with the highest
worst-shape detection wins (tied, the higher next-worst, and so on: a change that lifts every shape but the
hardest still counts), then the lowest false-alarm rate, then the more conservative set (larger
margin, larger warning threshold), then the lowest median delay. Two stages: the scan's own thresholds
first (with no end-of-run look), then the end-of-run look's threshold `z_end` on the chosen scan (the more
conservative: the higher z_end, or none). Real runs play no part here (they are judged, not tuned on).

    python benchmarks/sweep.py [--runs 100] [--seed 7]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
GRID = {"z_warn": [3.0, 3.25], "margin_h": [0.03, 0.05], "best_max_width": [3, 6, 8]}
END_GRID = {"z_end": [None, 2.5, 2.6, 2.75]}  # the second stage, on the first stage's chosen set
KEYS = [*GRID, *END_GRID]


def draw(n_runs: int, seed: int) -> list[tuple[str, object, dict]]:
    """(kind, aligned run, truth) for every generated run, aligned once."""
    sys.path.insert(0, str(HERE))
    import detection
    import shapes

    from diag.detect.align import align

    out = []
    expect = {"healthy": "no_alert", "decoupled": "decoupling_firing", "weak": "signal_gap_only"}
    for kind, offset in (("healthy", 0), ("decoupled", 50_000), ("weak", 90_000)):
        for i in range(n_runs):
            run, onset = detection.make_run(kind, seed * 7_919 + i + offset)
            truth = {"onset": onset, "end": None, "expect": expect[kind]}
            out.append((f"tiny-{kind}", align(run.steps, run.evals, run.eval_items, run.meta["reward_funcs"]), truth))
    for shape in shapes.SHAPES:
        for i in range(n_runs):
            run, truth = shapes.make_shape_run(shape, seed * 104_729 + i)
            out.append((shape, align(run.steps, run.evals, run.eval_items, run.meta["reward_funcs"]), truth))
    return out


def judge(runs, params) -> dict[str, dict]:
    """Per kind: share right, share with a false alarm, median delay in evaluations."""
    sys.path.insert(0, str(HERE))
    import shapes

    from diag.detect.decoupling import detect_decoupling
    from diag.detect.hindsight import hindsight

    res: dict[str, dict] = {}
    for kind, a, truth in runs:  # check's verdict: the live scan, judged again at the end on a short run
        live = detect_decoupling(a, params)  # the delay is the monitor's
        v = shapes.verdict(hindsight(a, live, params), truth, live=live)
        r = res.setdefault(kind, {"runs": 0, "right": 0, "false": 0, "delays": []})
        r["runs"] += 1
        r["right"] += v["right"]
        r["false"] += v["false_alarm"]
        if v["right"] and v["delay"] is not None:
            r["delays"].append(v["delay"])
    return {k: {"right": r["right"] / r["runs"], "false_alarm": r["false"] / r["runs"],
                "median_delay": float(np.median(r["delays"])) if r["delays"] else None, "runs": r["runs"]}
            for k, r in res.items()}


NEGATIVE = ("tiny-healthy", "tiny-weak", "healthy_noisy", "collapse")  # tiny-weak: a decoupling or stall alert
POSITIVE = ("tiny-decoupled", "drift", "flat_fall", "small_large", "dip", "format")


def stage(runs, base, grid: dict, conservative) -> tuple:
    """Every combination of `grid` on `base`, judged: (the chosen row, every row); a row is (the combination,
    worst false alarm, worst detection, median delay, per kind). The rule is the module's; `conservative`
    ranks ties (larger is more conservative)."""
    rows = []
    for values in itertools.product(*grid.values()):
        combo = dict(zip(grid, values))
        r = judge(runs, replace(base, **combo))
        fa = max(r[k]["false_alarm"] for k in NEGATIVE)
        worst = min(r[k]["right"] for k in POSITIVE)
        delays = [r[k]["median_delay"] for k in POSITIVE if r[k]["median_delay"] is not None]
        rows.append((combo, fa, worst, float(np.median(delays)) if delays else None, r))
        print(f"{combo}: worst false-alarm {100 * fa:.1f}%, worst detection {100 * worst:.1f}%, "
              + ", ".join(f"{k} {100 * r[k]['right']:.0f}%/{r[k]['median_delay']}" for k in POSITIVE)
              + "; false alarms " + ", ".join(f"{k} {100 * r[k]['false_alarm']:.0f}%" for k in NEGATIVE), flush=True)
    ok = [row for row in rows if row[1] <= 0.01] or rows
    best = max(ok, key=lambda row: (sorted(round(row[4][k]["right"], 3) for k in POSITIVE), -round(row[1], 3),
                                    *conservative(row[0]), -(row[3] or 99)))
    return best, rows


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=100, help="runs per kind")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--record", action="store_true", help="keep the grid in benchmarks/results.json (entry sweep)")
    a = p.parse_args(argv)
    from diag.detect.decoupling import DecouplingParams

    t0 = time.perf_counter()
    runs = draw(a.runs, a.seed)
    first = stage(runs, replace(DecouplingParams(), z_end=None), GRID,
                  lambda c: (c["margin_h"], c["z_warn"]))
    chosen = dict(first[0][0])
    second = stage(runs, replace(DecouplingParams(), **chosen), END_GRID,
                   lambda c: (99.0 if c["z_end"] is None else c["z_end"],))
    best = second[0]
    chosen.update(best[0])
    print(f"\nchosen: {chosen} (worst false alarm {100 * best[1]:.1f}%, worst detection {100 * best[2]:.1f}%, "
          f"median delay {best[3]} evaluations; {time.perf_counter() - t0:.0f} s)")
    rows = [({**c, "z_end": None}, *rest) for c, *rest in first[1]] + [({**dict(first[0][0]), **c}, *rest)
                                                                       for c, *rest in second[1]]
    result = {"chosen": chosen, "seconds": time.perf_counter() - t0, "runs_per_kind": a.runs,
              "rows": [{**params, "worst_false_alarm": fa, "worst_detection": worst, "median_delay": delay,
                        **{f"{k}/right": r[k]["right"] for k in POSITIVE},
                        **{f"{k}/false_alarm": r[k]["false_alarm"] for k in NEGATIVE}}
                       for params, fa, worst, delay, r in rows]}
    result.update({f"chosen_{k}": v for k, v in chosen.items()})
    if a.record:
        from common import record

        record("sweep", result)
    return result


def table(result: dict) -> str:
    """The guide's table (docs/validity.md): one row per parameter set, the chosen one in bold."""
    pct = lambda x: f"{100 * x:.0f}%"  # noqa: E731
    keys = [k for k in KEYS if k in result["chosen"]]  # (a result recorded before the second stage has no z_end)
    lines = ["| " + " | ".join([*keys, "worst false alarm", "worst detection", "median delay",
                                *[f"{k} right" for k in POSITIVE], *[f"{k} false alarms" for k in NEGATIVE]]) + " |",
             "|" + "---|" * (len(keys) + 3 + len(POSITIVE) + len(NEGATIVE))]
    seen = set()
    for row in result["rows"]:
        key = tuple(row.get(k) for k in keys)
        if key in seen:
            continue  # the first stage's chosen set comes back as the second stage's "off" row
        seen.add(key)
        chosen = key == tuple(result["chosen"][k] for k in keys)
        cells = ["off" if row.get(k) is None else str(row[k]) for k in keys] + [pct(row["worst_false_alarm"]), pct(row["worst_detection"]),
                                               "-" if row["median_delay"] is None else f"{row['median_delay']:.1f}"]
        cells += [pct(row[f"{k}/right"]) for k in POSITIVE] + [pct(row[f"{k}/false_alarm"]) for k in NEGATIVE]
        lines.append("| " + " | ".join(f"**{c}**" if chosen else c for c in cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    main()
