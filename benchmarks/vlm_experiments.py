"""The papers' comparison in miniature on the tiny vision-language default (training/experiments/vlm.py)
as a benchmark: every arm trained as `python -m training.experiments.vlm` trains it, then read back from its
run (held-out accuracy on the images and on the same items written out, first -> last evaluation, the
findings `check` gives, the all-fail share, the correctness reward over the first and last 100 steps),
kept with `--record` in the results file docs/vlm.md draws its table and figures from.

    python benchmarks/vlm_experiments.py [--out runs/vlm-experiments] [--small] [--no-train] [--record]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import record, recorded_wall  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)
ARMS = {"grpo-image": "GRPO on images", "sft-image": "SFT on images", "sft-text": "SFT on text only"}


def _series(run, modality: str):
    """(first, last, best) held-out accuracy on `modality` ('image' or 'text'): the run's own task's set is
    named 'heldout', the other modality's set by its task."""
    import polars as pl

    own = run.meta.get("task") == f"digits-{modality}"
    e = run.evals.filter((pl.col("eval_set") == ("heldout" if own else f"digits-{modality}"))
                         & (pl.col("bucket") == "all") & (pl.col("metric") == "accuracy")).sort("step")
    v = e["value"].to_list()
    return (v[0], v[-1], max(v)) if v else (None, None, None)


def cell(path: Path) -> dict:
    """One arm's figures, read from its run (wall: from its creation to its end, as the store recorded them)."""
    import polars as pl

    import diag
    from diag.detect import detect_all

    run = diag.open_run(path)
    img, txt = _series(run, "image"), _series(run, "text")
    alerts = [f for f in detect_all(run) if f.is_alert]
    s = run.steps.sort("step")
    out = {"wall": recorded_wall(run), "image_start": img[0], "image_end": img[1], "image_best": img[2], "text_start": txt[0],
           "text_end": txt[1], "findings": "; ".join(sorted({f"{f.kind} {f.severity}" for f in alerts})) or "none"}
    if s.height and "frac_all_fail" in s.columns and s["frac_all_fail"].null_count() < s.height:  # GRPO arms only
        out["all_fail"] = float(s["frac_all_fail"].mean())
        out["all_fail_first100"] = float(s.head(100)["frac_all_fail"].mean())
        out["all_fail_last100"] = float(s.tail(100)["frac_all_fail"].mean())
        if "func_mean" in s.columns:  # the first reward function is the strict correctness reward
            first = s.select(pl.col("func_mean").list.first().alias("r"))["r"]
            out["correct_first100"] = float(first.head(100).mean())
            out["correct_last100"] = float(first.tail(100).mean())
    return out


def table(result: dict) -> str:
    """The guide's table (docs/vlm.md), from the recorded cells."""
    def acc(c: dict, m: str) -> str:
        if c.get(f"{m}_start") is None:
            return "-"
        best = c.get(f"{m}_best")
        tail = f" (best {best:.3f})" if m == "image" and best is not None and best > max(c[f"{m}_start"], c[f"{m}_end"]) else ""
        return f"{c[f'{m}_start']:.3f} -> {c[f'{m}_end']:.3f}{tail}"

    lines = ["| base | arm | images | text | alerts (`check`) | all-fail share | wall s |", "|---|---|---|---|---|---|---|"]
    for key, c in result["cells"].items():
        base, arm = key.split("-", 2)[:2], key.split("-", 2)[2]
        share = f"{c['all_fail']:.2f}" if c.get("all_fail") is not None else "-"
        lines.append(f"| {'-'.join(base)} | {ARMS[arm]} | {acc(c, 'image')} | {acc(c, 'text')} | {c['findings']} | "
                     f"{share} | {c['wall']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    from training.experiments.vlm import main as grid

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/vlm-experiments")
    p.add_argument("--small", action="store_true", help="smoke-sized settings")
    p.add_argument("--no-train", action="store_true", help="summarise the runs already in --out")
    p.add_argument("--record", action="store_true", help="keep the figures in benchmarks/results.json")
    a = p.parse_args(argv)
    if a.no_train:
        from training.experiments.vlm import BASES

        paths = [Path(a.out) / f"{b}-{arm}" for b in BASES for arm in ARMS]
    else:
        paths = [Path(p) for p in grid(["--out", a.out] + (["--small"] if a.small else []))]
    result = {"cells": {p.name: cell(p) for p in paths}}
    print(table(result))
    if a.record:
        record("vlm_experiments", result)
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
