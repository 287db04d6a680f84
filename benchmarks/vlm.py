"""The tiny vision-language runs as a user starts them (`grpo-diag train training/configs/vlm/*.toml`), read
back from each run's own store: the time per optimizer step (GRPO: the median of TRL's step_time; SFT: the
trainer's runtime over its steps), the steps and held-out evaluations recorded, the time inside the run
(created to finished, run.json) and the wall time with the process's start-up.

    python benchmarks/vlm.py [--record]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import recorded_wall, report  # noqa: E402

CONFIGS = {"grpo": "training/configs/vlm/grpo.toml", "sft": "training/configs/vlm/sft.toml"}


def measure(kind: str, out: Path) -> dict:
    """One config trained in a fresh process; its figures read from the run it wrote."""
    import diag

    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "diag.cli", "train", CONFIGS[kind], "--out", str(out), "--overwrite"],
                   cwd=ROOT, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    run = diag.open_run(next(p for p in out.iterdir() if p.is_dir()))
    scalar = lambda key: run.scalars.filter(pl.col("key") == key)["value"]  # noqa: E731
    steps, step_time, runtime = int(run.steps["step"].max()), scalar("step_time"), scalar("train_runtime")
    evals = run.evals.filter(pl.col("metric") == "accuracy")
    return {f"{kind}_steps": steps,
            # GRPO logs TRL's step_time per step; SFT only the trainer's runtime: its mean per step
            f"{kind}_step_s": float(step_time.median()) if step_time.len() else float(runtime.max()) / steps,
            f"{kind}_evaluations": evals["step"].n_unique(),
            f"{kind}_heldout_sets": evals["eval_set"].n_unique(),
            f"{kind}_heldout_items": int(evals["n"].max()) if evals.height else 0,
            f"{kind}_in_run_s": recorded_wall(run),  # model built to run finished
            f"{kind}_wall_s": wall}  # with the process's start-up (imports)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--record", action="store_true", help="keep the figures in benchmarks/results.json (entry vlm)")
    a = p.parse_args(argv)
    result: dict = {}
    for kind in CONFIGS:
        with tempfile.TemporaryDirectory() as d:
            result.update(measure(kind, Path(d)))
    return report(result, record_as="vlm" if a.record else None)


if __name__ == "__main__":
    main()
