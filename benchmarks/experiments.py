"""The SFT-vs-RL grid (training/experiments/sft-vs-rl.toml) as a benchmark: every arm trained as
`make experiments` trains it, its held-out accuracy per bucket at the start and the end read back from
its run, kept with `--record` in the results file docs/experiments.md draws its table and figures from.

    python benchmarks/experiments.py [--out runs/experiments] [--record]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import record  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)


def cell(row: dict) -> dict:
    """One arm's figures, flat (the guide cites them as experiments.cells/b1500-sft/end ...)."""
    import polars as pl

    import diag
    from diag.summary import bucket_series, summarize

    run = diag.open_run(Path(row["path"]))
    by_bucket = bucket_series(run.evals)
    first = by_bucket.filter(pl.col("step") == by_bucket["step"].min())
    out = {"start": float(row["start"]), "end": float(row["end"]), "wall": float(row["wall"]),
           "all_fail": summarize(run).get("frac_all_fail_mean")}
    out.update({f"{b}_start": float(v) for b, v in zip(first["bucket"], first["value"])})
    out.update({f"{b}_end": float(v) for b, v in row["buckets"].items()})
    return out


def table(result: dict) -> str:
    """The guide's table, by the grid's own results_table, from the recorded rows."""
    from training.experiments.__main__ import results_table

    return results_table(result["rows"])


def main(argv: list[str] | None = None) -> dict:
    from training.experiments.__main__ import main as grid

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/experiments")
    p.add_argument("--record", action="store_true", help="keep the figures in benchmarks/results.json")
    a = p.parse_args(argv)
    rows = grid(["--out", a.out])
    result = {"rows": [{k: v for k, v in r.items() if k != "path"} for r in rows],
              "cells": {r["run"].split("-", 3)[-1]: cell(r) for r in rows}}
    if a.record:
        record("experiments", result)
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
