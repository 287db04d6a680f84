"""What following a verl run costs per step, at cluster scale: `grpo-diag watch` on generated rollout dumps.

    python benchmarks/watch.py [--steps 4] [--sizes 1024 8192 65536]

Rows per step stand for 8, 64 and 512 GPUs' worth of rollouts (128 completions per GPU per step, groups of
8, a 600-character completion each, verl's legacy dump fields). For each size the dumps of `--steps` steps
are written, then followed: reported are the dump size per step, the seconds the follower spends per step
(read, regroup, statistics, store, monitor), rows per second, and the peak resident memory of the process.
A step is taken once the next step's dump exists, so the alert lag is one step of training plus one poll
interval (2 s by default) plus the processing time measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diag.monitor import MonitorConfig  # noqa: E402
from diag.watch import WatchOptions, follower_for  # noqa: E402

G = 8


def write_dump(path: Path, step: int, rows: int, rng: np.random.Generator) -> int:
    prompts = rows // G
    p = rng.beta(0.5, 2.0, size=prompts)
    lines = []
    for i in range(prompts):
        for _ in range(G):
            acc = bool(rng.random() < p[i])
            lines.append(json.dumps({"input": f"Question {step}-{i}: what is {i} + {step}?", "gts": str(i + step),
                                     "output": ("reasoning " * 60)[:600], "score": float(acc), "acc": acc,
                                     "step": step}))
    data = ("\n".join(lines) + "\n").encode()
    (path / f"{step}.jsonl").write_bytes(data)
    return len(data)


def measure(rows: int, steps: int) -> dict:
    rng = np.random.default_rng(rows)
    with tempfile.TemporaryDirectory() as tmp:
        dumps = Path(tmp) / "rollout"
        dumps.mkdir()
        size = write_dump(dumps, 1, rows, rng)
        opts = WatchOptions(fmt="verl-rollouts", name="bench", root=str(Path(tmp) / "runs"), interval=0.0, idle=None,
                            monitor=MonitorConfig(console=False))
        f = follower_for(dumps, opts, out=open(os.devnull, "w"))
        f._tmp = tempfile.TemporaryDirectory()
        f._poll(final=False)  # nothing complete yet: the newest dump may still be written
        secs = []
        for step in range(2, steps + 2):
            write_dump(dumps, step, rows, rng)
            t0 = time.perf_counter()
            f._poll(final=False)  # takes the previous step, now complete
            secs.append(time.perf_counter() - t0)
        f._close("stale")
    per = float(np.median(secs))
    return {"rows_per_step": rows, "gpus": rows // 128, "dump_mb_per_step": size / 1e6, "s_per_step": per,
            "rows_per_s": rows / per, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 8192, 65536])
    a = p.parse_args(argv)
    out = []
    print("| rollouts per step | GPUs (128 each) | dump per step | follower time per step | rows/s | peak RSS |")
    print("|---|---|---|---|---|---|")
    for rows in a.sizes:
        r = measure(rows, a.steps)
        out.append(r)
        print(f"| {rows:,} | {r['gpus']} | {r['dump_mb_per_step']:.1f} MB | {r['s_per_step']:.2f} s | "
              f"{r['rows_per_s']:,.0f} | {r['peak_rss_mb']:.0f} MB |", flush=True)
    return out


if __name__ == "__main__":
    main()
