"""One process vs several (`accelerate launch`, CPU gloo): the same config and global batch, read back
from each run's own store: median optimizer step time (TRL's step_time), held-out evaluation time
(shared over the ranks), and whether both recorded the same groups.

    python benchmarks/processes.py [--processes 2] [--steps 20] [--n-eval 400]

On a CPU machine the processes share its cores (one thread each vs all threads for one process), so
the ratio shows what coordination costs, not a speed-up; on N GPUs each rank has its own device.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import report  # noqa: E402

CONFIG = """
name = "{name}"
kind = "grpo"
[model]
path = "base:weak"
[task]
name = "add2"
n_train = 2000
n_eval = {n_eval}
[grpo]
steps = {steps}
num_generations = 8
prompts_per_step = 8
max_completion_length = 12
rewards = ["strict_correct"]
[heldout]
every = 5
max_new_tokens = 12
[monitor]
console = false
"""


def launch(tmp: Path, name: str, processes: int, steps: int, n_eval: int) -> tuple[float, Path]:
    cfg = tmp / f"{name}.toml"
    cfg.write_text(CONFIG.format(name=name, steps=steps, n_eval=n_eval))
    train = ["-m", "diag.cli", "train", str(cfg), "--out", str(tmp / "runs")]
    cores = os.cpu_count() or 1
    if processes == 1:
        cmd, threads = [sys.executable, *train], cores
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
               *train]
        threads = max(1, cores // processes)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    return time.perf_counter() - t0, tmp / "runs" / name


def figures(run_dir: Path) -> dict:
    import diag

    run = diag.open_run(run_dir)
    step_time = run.scalars.filter(pl.col("key") == "step_time")["value"]
    held = run.scalars.filter(pl.col("key") == "diag/heldout_seconds")["value"]
    prompts = (run.groups.filter(pl.col("mode") == "train").group_by("step")
               .agg(pl.col("prompt_hash").sort()).sort("step")["prompt_hash"].to_list())
    return {"step": float(step_time.median()), "heldout": float(held.median()), "prompts": prompts,
            "groups": run.groups.filter(pl.col("mode") == "train").height}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--n-eval", type=int, default=400)
    ap.add_argument("--json")
    ap.add_argument("--record", action="store_true", help="keep the figures in benchmarks/results.json (entry processes)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        wall1, one = launch(tmp, "one", 1, a.steps, a.n_eval)
        wallN, many = launch(tmp, "many", a.processes, a.steps, a.n_eval)
        f1, fN = figures(one), figures(many)
    report({
        "processes": a.processes,
        "steps": a.steps,
        "global_batch": "8 x 8",
        "heldout_items": a.n_eval,
        "groups_one": f1["groups"],
        "groups_many": fN["groups"],
        "same_prompts_every_step": f1["prompts"] == fN["prompts"],
        "step_median_one_s": f1["step"],
        "step_median_many_s": fN["step"],
        "heldout_one_s": f1["heldout"],
        "heldout_many_s": fN["heldout"],  # the items split over the ranks
        "launch_wall_one_s": wall1,
        "launch_wall_many_s": wallN,
    }, a.json, record_as="processes" if a.record else None)


if __name__ == "__main__":
    main()
