"""What following a verl run costs per step, at cluster scale: `grpo-diag watch` on generated rollout dumps.

    python benchmarks/watch.py [--steps 4] [--sizes 1024 8192 65536]
    python benchmarks/watch.py --lag [--lag-steps 1000] [--groups 512] [--every 0.1] [--interval 0.5]
    python benchmarks/watch.py --rows-window   # the live vs offline signal gap on a real log with a row every 5 steps

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


def write_dump(path: Path, step: int, rows: int, rng: np.random.Generator, weak: bool = False) -> int:
    """One step's dump; `weak`: a model that solves ~3% of prompts (most groups all-fail: a signal gap)."""
    prompts = rows // G
    p = rng.beta(0.1, 3.0, size=prompts) if weak else rng.beta(0.5, 2.0, size=prompts)
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


WRITER = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[5])
from benchmarks.watch import write_dump
from pathlib import Path
out, steps, rows, every = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
rng = np.random.default_rng(0)
with open(out.parent / "landed.jsonl", "w") as landed:
    for s in range(1, steps + 1):
        t0 = time.time()
        write_dump(out, s, rows, rng, weak=True)
        (out / f"{s - 50}.jsonl").unlink(missing_ok=True)  # bounded disk: the follower took it 49 steps ago
        landed.write(json.dumps({"step": s, "t": time.time()}) + chr(10)); landed.flush()
        time.sleep(max(0.0, every - (time.time() - t0)))
"""


def lag(steps: int, groups: int, every: float, interval: float) -> dict:
    """A writer process lands a weak model's dump every `every` seconds; the follower (this process) runs
    beside it. Per step: landing -> its groups stored (a dump is taken once the next one lands, so this
    includes one step of writing); the first alert's lag from the landing of the step that raised it; the
    follower's CPU share of its wall time. The writer deletes dumps 50 steps old, to keep the disk bounded
    over a long run (verl keeps them; the follower has long taken them)."""
    import subprocess

    from diag.importers import verl_files

    stored: dict[int, float] = {}
    original = verl_files.log_dump_step

    def timed(rec, step, grouped, rule):
        original(rec, step, grouped, rule)
        stored[step] = time.time()

    verl_files.log_dump_step = timed
    with tempfile.TemporaryDirectory() as tmp:
        dumps = Path(tmp) / "rollout"
        dumps.mkdir()
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(dumps), str(steps), str(groups * G), str(every),
                                   str(Path(__file__).resolve().parents[1])])
        opts = WatchOptions(fmt="verl-rollouts", name="lag", root=str(Path(tmp) / "runs"), interval=interval,
                            idle=max(5.0, 10 * every), monitor=MonitorConfig(console=False))
        follower = follower_for(dumps, opts, out=open(os.devnull, "w"))
        cpu0, wall0 = time.process_time(), time.time()
        follower.run()
        cpu, wall = time.process_time() - cpu0, time.time() - wall0
        writer.wait()
        landed = {r["step"]: r["t"] for r in map(json.loads, (Path(tmp) / "landed.jsonl").read_text().splitlines())}
        import diag

        alerts = diag.open_run(Path(tmp) / "runs" / "lag").alerts
    verl_files.log_dump_step = original
    lags = np.array([stored[s] - landed[s] for s in landed if s in stored and s < steps])
    first = alerts.sort("wall_time").row(0, named=True) if alerts.height else None
    return {"steps": steps, "groups": groups, "every_s": every, "interval_s": interval,
            "store_lag_median_s": float(np.median(lags)), "store_lag_p95_s": float(np.percentile(lags, 95)),
            "alert": None if first is None else {"kind": first["kind"], "step": first["step"],
                                                 "lag_s": first["wall_time"] - landed[first["step"]]},
            "cpu_share": cpu / wall, "wall_s": wall}


SPARSE_LOG = "trl_console_qwen25_7b_gsm8k/exp1a/rho1.00_seed42.log"  # a real TRL console log, a row every 5 steps


def rows_window(log: str = SPARSE_LOG) -> dict:
    """The known difference of a live monitor on a log with a row every N steps: its rolling window counts
    logged rows, so its signal-gap alert can come later and milder than the offline check's. The run's logged
    rows are fed to the monitor in order, as `grpo-diag watch` feeds them; the offline scan reads the whole run."""
    import diag
    from diag.detect import detect_all
    from diag.detect.decoupling import fold
    from diag.importers import import_log
    from diag.monitor import Monitor

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from validity import real_logs_dir

    with tempfile.TemporaryDirectory() as tmp:
        run = diag.open_run(import_log(real_logs_dir() / log, root=tmp)[0])
        mon = Monitor(None, MonitorConfig(console=False), run_name=run.name, func_names=run.reward_funcs,
                      reward_range=run.meta.get("reward_range"))
        for row in run.steps.sort("step").to_dicts():
            mon("step", row)
        live = [f for f in fold(mon.findings) if f.kind == "signal_gap" and f.is_alert]
        offline = [f for f in detect_all(run) if f.kind == "signal_gap" and f.is_alert]
        steps = run.steps["step"].sort().to_numpy()
    first = lambda fs: (fs[0].step, fs[0].severity) if fs else (None, None)  # noqa: E731
    (ls, lsev), (os_, osev) = first(live), first(offline)
    return {"log": log, "row_every": int(np.median(np.diff(steps))), "live_step": ls, "live_severity": lsev,
            "offline_step": os_, "offline_severity": osev}


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 8192, 65536])
    p.add_argument("--lag", action="store_true", help="the lag from a dump landing to its rows and its alert")
    p.add_argument("--lag-steps", type=int, default=1000)
    p.add_argument("--groups", type=int, default=512)
    p.add_argument("--every", type=float, default=0.1, help="seconds between the writer's steps")
    p.add_argument("--interval", type=float, default=0.5, help="the follower's poll interval")
    p.add_argument("--record", action="store_true", help="keep the figures in benchmarks/results.json "
                                                         "(entry watch, or watch_lag with --lag)")
    p.add_argument("--rows-window", action="store_true", help="live vs offline signal gap on a real sparse log "
                                                               "(entry watch_rows)")
    a = p.parse_args(argv)
    if a.rows_window:
        r = rows_window()
        print(json.dumps(r))
        if a.record:
            _record("watch_rows", r)
        return [r]
    if a.lag:
        r = lag(a.lag_steps, a.groups, a.every, a.interval)
        print(f"{r['steps']} steps of {r['groups']} groups x {G}, one every {r['every_s']} s, polled every "
              f"{r['interval_s']} s: landing -> stored median {r['store_lag_median_s']:.2f} s, p95 "
              f"{r['store_lag_p95_s']:.2f} s; first alert {r['alert']}; follower CPU {100 * r['cpu_share']:.0f}% of "
              f"one core over {r['wall_s']:.0f} s")
        if a.record:
            _record("watch_lag", {**r, "alert_kind": (r["alert"] or {}).get("kind"),
                                  "alert_lag_s": (r["alert"] or {}).get("lag_s")})
        return [r]
    out = []
    print(table(out, header_only=True))
    for rows in a.sizes:
        r = measure(rows, a.steps)
        out.append(r)
        print(table([r], header_only=False).splitlines()[-1], flush=True)
    if a.record:
        _record("watch", {"steps": a.steps, "rows": out, **{f"s_per_step_{r['rows_per_step']}": r["s_per_step"]
                                                            for r in out}})
    return out


def table(result, header_only: bool = False) -> str:
    """The guide's table (docs/watch.md): one row per size (`result`: the rows, or the recorded entry)."""
    rows = result["rows"] if isinstance(result, dict) else result
    lines = ["| rollouts per step | GPUs (128 each) | dump per step | follower time per step | rows/s | peak RSS |",
             "|---|---|---|---|---|---|"]
    if header_only:
        return "\n".join(lines)
    for r in rows:
        lines.append(f"| {r['rows_per_step']:,} | {r['gpus']} | {r['dump_mb_per_step']:.1f} MB | {r['s_per_step']:.2f} s | "
                     f"{r['rows_per_s']:,.0f} | {r['peak_rss_mb']:.0f} MB |")
    return "\n".join(lines)


def _record(name: str, result: dict) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import record

    record(name, result)


if __name__ == "__main__":
    main()
