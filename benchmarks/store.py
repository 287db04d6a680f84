"""Run store throughput and the online monitor's cost as a run grows.

- write: 100k `steps` rows and 1M `completions` rows as segments of 1k steps (10k completions) each,
  through RunWriter (atomic segments); rows per second.
- open: time to open the 100k-step run and read every table; peak resident memory of that process.
- recorder: Recorder.log_batch calls per second for batches of 16 groups x 8.
- monitor: microseconds per step of Monitor.on_step at 1k, 10k and 100k steps (it must stay flat),
  and per evaluation of Monitor.on_eval (an evaluation every 20 steps, 64 retained).

    python benchmarks/store.py [--steps 100000] [--completions 1000000] [--record]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_big(root: str, steps: int, completions: int) -> dict:
    import numpy as np
    import polars as pl

    from diag import schema
    from diag.store import RunWriter

    w = RunWriter.create(root, "big", {"reward_funcs": ["r"], "group_size": 8})
    rng = np.random.default_rng(0)
    per_seg = 1000
    comp_per_step = max(1, completions // steps)
    t = time.perf_counter()
    for start in range(1, steps + 1, per_seg):
        n = min(per_seg, steps - start + 1)
        st = np.arange(start, start + n)
        w.append("steps", schema.conform("steps", pl.DataFrame({
            "step": st, "gen_call": st, "n_groups": np.full(n, 16), "n_completions": np.full(n, 128),
            "reward_mean": rng.random(n), "reward_std": rng.random(n), "func_mean": [[0.5]] * n,
            "frac_zero_signal": rng.random(n), "frac_all_fail": rng.random(n), "frac_all_pass": rng.random(n),
            "frac_tied": np.zeros(n), "effective_batch": np.full(n, 64), "adv_var_mean": rng.random(n)})))
        m = n * comp_per_step
        cs = np.repeat(st, comp_per_step)
        w.append("completions", schema.conform("completions", pl.DataFrame({
            "step": cs, "gen_call": cs, "mode": ["train"] * m, "group": np.zeros(m, int), "index": np.arange(m) % 8,
            "prompt": ["12+34="] * m, "completion": ["46"] * m, "rewards": [[1.0]] * m, "reward": np.ones(m),
            "advantage": rng.normal(size=m), "length": np.full(m, 3), "passed": np.ones(m, bool),
            "signal": ["mixed"] * m})))
    dt = time.perf_counter() - t
    w.write_meta(status="finished")
    return {"write_s": dt, "steps_rows_per_s": steps / dt, "completion_rows": steps * comp_per_step,
            "completion_rows_per_s": steps * comp_per_step / dt}


def open_in_subprocess(path: str) -> dict:
    code = ("import time,resource,diag;t=time.perf_counter();r=diag.open_run(%r);"
            "n=(r.steps.height,r.completions.height);dt=time.perf_counter()-t;"
            "print(dt,n[0],n[1],resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)") % path
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return {"open_s": float(out[0]), "open_steps": int(out[1]), "open_completions": int(out[2]),
            "open_peak_rss_mb": int(out[3]) / 1024}


def recorder_rate(root: str, batches: int = 2000) -> float:
    import numpy as np

    import diag

    rec = diag.Recorder(root, "rate", ["r"], group_size=8)
    rng = np.random.default_rng(0)
    prompts = [f"p{i // 8}" for i in range(128)]
    texts = ["x"] * 128
    t = time.perf_counter()
    for s in range(1, batches + 1):
        rec.log_batch(s, (rng.random(128) < 0.4).astype(float), advantages=rng.normal(size=128),
                      lengths=np.full(128, 4), passed=rng.random(128) < 0.4, prompts=prompts, completions=texts)
    dt = time.perf_counter() - t
    rec.close()
    return batches / dt


def monitor_cost() -> dict:
    import numpy as np
    import polars as pl

    from diag.monitor import Monitor, MonitorConfig

    mon = Monitor(None, MonitorConfig(console=False), func_names=["r"])
    rng = np.random.default_rng(0)
    out, step = {}, 0

    def block(n):
        nonlocal step
        t = time.perf_counter()
        for _ in range(n):
            step += 1
            mon.on_step({"step": step, "reward_mean": rng.random(), "func_mean": [0.5], "frac_all_fail": 0.3,
                         "frac_all_pass": 0.1, "len_mean": 4.0, "frac_clipped": 0.0})
        return (time.perf_counter() - t) / n * 1e6

    eval_us = []
    for target in (1_000, 10_000, 100_000):
        while step < target - 1000:
            block(20)  # a held-out evaluation every 20 steps
            frame = pl.DataFrame({"step": [step], "eval_set": ["h"], "metric": ["accuracy"], "bucket": ["all"],
                                  "value": [0.5 + 0.01 * rng.normal()], "n": [300]})
            t = time.perf_counter()
            mon.on_eval({"frame": frame, "correct": rng.random(300) < 0.5})
            eval_us.append((time.perf_counter() - t) * 1e6)
        out[f"monitor_us_per_step_at_{target}"] = block(1000)
    out["monitor_us_per_eval"] = float(np.median(eval_us[-20:]))
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--completions", type=int, default=1_000_000)
    p.add_argument("--json")
    p.add_argument("--record", action="store_true", help="keep the figures in benchmarks/results.json (entry store)")
    a = p.parse_args(argv)
    from benchmarks.common import report

    root = tempfile.mkdtemp(prefix="grpo-diag-store-")
    r = write_big(root, a.steps, a.completions)
    r.update(open_in_subprocess(str(Path(root) / "big")))
    r["recorder_batches_per_s"] = recorder_rate(root)
    r.update(monitor_cost())
    return report(r, a.json, record_as="store" if a.record else None)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
