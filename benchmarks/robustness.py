"""Do the demo scenarios hold on any machine? Every scenario over seeds x torch thread counts.

Tiny models' trajectories differ between CPUs, BLAS builds and thread counts; seeds and thread counts
are the perturbations at hand on one machine. For each (scenario, seed, threads) the demo runs in its
own process (OMP_NUM_THREADS=threads), then the run is judged by its contract (training/contracts.py)
and by whether `grpo-diag check`'s verdict at the end of the run is right:
strong-healthy no critical alert firing, weak-signal-gap a signal gap firing, deceptive-reward a
critical decoupling firing.

    python benchmarks/robustness.py [--seeds 0 1 2 3 4] [--threads 1 2] [--jobs 2] [--out DIR] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ("strong-healthy", "weak-signal-gap", "deceptive-reward")


def run_one(scenario: str, seed: int, threads: int, out: Path) -> dict:
    dest = out / f"seed{seed}-t{threads}"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "diag.cli", "demo", "--only", scenario, "--seed", str(seed),
                           "--out", str(dest)], env=env, cwd=ROOT, capture_output=True, text=True)
    return {"scenario": scenario, "seed": seed, "threads": threads, "dir": dest / scenario, "rc": proc.returncode,
            "wall": time.perf_counter() - t0, "log": proc.stdout[-2000:] + proc.stderr[-2000:]}


def verdict_right(scenario: str, findings) -> bool:
    firing = [f for f in findings if f.firing]
    if scenario == "strong-healthy":
        return not any(f.severity == "critical" for f in firing)
    if scenario == "weak-signal-gap":
        return any(f.kind == "signal_gap" for f in firing) and not any(f.kind == "decoupling" for f in firing)
    return any(f.kind == "decoupling" and f.severity == "critical" for f in firing)


def judge(r: dict) -> dict:
    import diag
    from diag.detect import detect_all
    from diag.summary import summarize
    from training.contracts import check

    if not (r["dir"] / "run.json").exists():
        return {**r, "met": False, "right": False, "why": "no run (base outside its band?): " + r["log"][-300:]}
    run = diag.open_run(r["dir"])
    v, s = check(r["scenario"], run), summarize(run)
    return {**r, "met": v.met, "right": verdict_right(r["scenario"], detect_all(run)), "why": v.line(),
            "acc": (s["accuracy_start"], s["accuracy_peak"], s["accuracy_end"]),
            "reward": (s["reward_start"], s["reward_end"]), "all_fail": s["frac_all_fail_mean"]}


def table(rows: list[dict] | dict) -> str:
    """The guide's table (docs/embedded-default.md): per scenario, from the cells (or the recorded entry)."""
    rows = rows["cells"] if isinstance(rows, dict) else rows
    lines = ["| scenario | runs (seeds x threads) | contract met | check verdict right | held-out acc start / peak / end (range) "
             "| mean all-fail (range) | wall s (median) |", "|---|---|---|---|---|---|---|"]
    for sc in SCENARIOS:
        rs = [r for r in rows if r["scenario"] == sc]
        if not rs:
            continue
        ok = [r for r in rs if r.get("acc")]

        def rng(vals):
            vals = [v for v in vals if v is not None]
            return f"{min(vals):.2f}-{max(vals):.2f}" if vals else "-"

        acc = " / ".join(rng([r["acc"][i] for r in ok]) for i in range(3))
        walls = sorted(r["wall"] for r in rs)
        lines.append(f"| {sc} | {len(rs)} | {sum(r['met'] for r in rs)}/{len(rs)} | {sum(r['right'] for r in rs)}/{len(rs)} "
                     f"| {acc} | {rng([r['all_fail'] for r in ok])} | {walls[len(walls) // 2]:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    p.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) // 1))
    p.add_argument("--out", type=Path, help="keep the runs here (default: a temporary directory)")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--record", action="store_true", help="keep the cells in benchmarks/results.json (entry robustness)")
    a = p.parse_args(argv)
    out = a.out or Path(tempfile.mkdtemp(prefix="grpo-diag-robustness-"))
    cells = [(sc, s, t) for t in a.threads for s in a.seeds for sc in a.scenarios]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(a.jobs) as pool:  # each cell is its own process with its own thread count
        raw = list(pool.map(lambda c: run_one(*c, out), cells))
    rows = [judge(r) for r in raw]
    for r in rows:
        flag = "ok " if r["met"] and r["right"] else "BAD"
        print(f"{flag} {r['scenario']:<17} seed {r['seed']} threads {r['threads']}: {r['why']}", flush=True)
    import platform

    from diag.environment import reproducibility

    env = reproducibility()
    print(f"\nMeasured on {env['cpu']} ({platform.machine()}, {env['cpu_count']} cores), "
          f"{time.perf_counter() - t0:.0f} s, runs under {out}:\n")
    print(table(rows))
    if a.record:
        from common import record

        record("robustness", figures(rows, env))
    return rows


def figures(rows: list[dict], env: dict) -> dict:
    """What the guide shows (docs/embedded-default.md): every cell without its paths and logs, and the counts."""
    keep = ("scenario", "seed", "threads", "met", "right", "why", "acc", "all_fail", "wall")
    cells = [{k: r.get(k) for k in keep} for r in rows]
    from importlib.metadata import version

    out = {"cpu": env.get("cpu"), "torch": version("torch"), "cells": cells, "runs": len(cells),
           "met": sum(bool(c["met"]) for c in cells), "right": sum(bool(c["right"]) for c in cells),
           "seeds": sorted({c["seed"] for c in cells}), "threads": sorted({c["threads"] for c in cells})}
    # the same seed at each thread count: identical held-out trajectories or not (the CPU, not threads, moves them)
    same = [len({tuple(c["acc"] or ()) for c in cells if c["scenario"] == c0["scenario"] and c["seed"] == c0["seed"]}) == 1
            for c0 in cells if c0["threads"] == min(out["threads"])]
    out["thread_identical"], out["thread_pairs"] = sum(same), len(same)
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    main()
