"""Every benchmark, one after another in fresh processes, as one table; `--record` keeps the figures in
the results file the docs render (benchmarks/results.json, entry "run_all").

    python benchmarks/run_all.py [--quick] [--demo] [--record]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *args: str) -> dict:
    out = Path(tempfile.mkdtemp()) / "r.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args, "--json", str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def demo_seconds() -> float:
    """The demo from a cold cache, as on a fresh machine: the SFT bases are built too."""
    import os

    env = {**os.environ, "GRPO_DIAG_CACHE": tempfile.mkdtemp(prefix="grpo-diag-cold-")}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "diag.cli", "demo", "--out", tempfile.mkdtemp()], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def _drawn(d: dict, key: str) -> str:
    """Median (range) of the page loads dashboard.py timed, or why it did not."""
    if f"{key}_median_s" not in d:
        return str(d.get(key, "not measured"))
    return f"{d[f'{key}_median_s']:.2f} s ({d[f'{key}_min_s']:.2f}-{d[f'{key}_max_s']:.2f})"


def table(r: dict) -> str:
    o, s, d = r["overhead"], r["store"], r["dashboard"]
    rows = [
        ("instrumentation overhead (tiny model, 128 completions/step, interleaved)",
         f"ratio {o['ratio']:.3f} (median step {o['median_step_instrumented_s']:.4f} s vs {o['median_step_plain_s']:.4f} s); "
         f"hook {o['hook_median_ms']:.2f} ms = {100 * o['hook_share_of_step']:.1f}% of a step"),
        ("held-out evaluation (work, not overhead)", f"{o['heldout_eval_s']:.3f} s for {o['heldout_items']} prompts"),
        ("store write", f"{s['steps_rows_per_s']:,.0f} step rows/s; {s['completion_rows_per_s']:,.0f} completion rows/s "
                        f"({s['completion_rows']:,} completion rows)"),
        ("open a run", f"{s['open_steps']:,} steps + {s['open_completions']:,} completions in {s['open_s']:.2f} s, "
                       f"peak RSS {s['open_peak_rss_mb']:.0f} MB"),
        ("Recorder.log_batch", f"{s['recorder_batches_per_s']:,.0f} batches/s (16 groups x 8)"),
        ("online monitor per step", f"{s['monitor_us_per_step_at_1000']:.1f} / {s['monitor_us_per_step_at_10000']:.1f} / "
                                    f"{s['monitor_us_per_step_at_100000']:.1f} us at 1k / 10k / 100k steps; "
                                    f"{s['monitor_us_per_eval'] / 1000:.1f} ms per evaluation"),
        ("dashboard (10k steps x 64 groups)", f"open {d['open_run_s']:.2f} s; Run page computed {d['run_page_compute_s']:.2f} s, "
                                              f"drawn in Chromium {_drawn(d, 'run_page_10k')}; long run {_drawn(d, 'run_page_100k')}; "
                                              f"compare {_drawn(d, 'compare_6_runs')}; Trackio {_drawn(d, 'trackio')}; "
                                              f"live tick {d['live_tick_new_step_s']:.2f} s"),
    ]
    if "demo_s" in r:
        rows.append(("demo wall time, cold cache (SFT bases built, then 3 scenarios)", f"{r['demo_s']:.0f} s"))
    lines = [f"Measured {r['when']} on {r['machine']}.", "", "| benchmark | result |", "|---|---|"]
    lines += [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    p.add_argument("--demo", action="store_true", help="also time the demo (several minutes)")
    p.add_argument("--record", action="store_true", help="keep the figures in benchmarks/results.json")
    a = p.parse_args(argv)
    q = a.quick
    r = {"when": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores"}
    r["overhead"] = run("overhead.py", "--steps", "60" if q else "300")
    r["store"] = run("store.py", "--steps", "5000" if q else "100000", "--completions", "50000" if q else "1000000")
    r["dashboard"] = run("dashboard.py", "--steps", "500" if q else "10000", "--groups", "16" if q else "64",
                         "--long-steps", "1000" if q else "100000", "--compare", "2" if q else "6",
                         "--loads", "3" if q else "12")
    if a.demo:
        r["demo_s"] = demo_seconds()
    md = table(r)
    print(md)
    if a.record:
        from benchmarks.common import record

        record("run_all" + ("_quick" if q else ""), r)
    return r


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
