"""The papers' central comparison on a real model: SmolLM2-135M-Instruct on chat word problems,
GRPO from the pretrained model (the weak start) against SFT on 320 worked solutions then the same GRPO.

Runs training/configs/smollm2/grpo.toml and sft-then-grpo.toml (about 35 min on 2 CPU cores), then
prints one row per run, every number read from the runs themselves, and writes an HTML report of the
three runs. Open the dashboard's compare page on the same folder to see them side by side.

    python benchmarks/smollm2_arms.py --out runs/smollm2            # train, then summarise
    python benchmarks/smollm2_arms.py --out runs/smollm2 --no-train # summarise existing runs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import recorded_wall  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)

CONFIGS = ("grpo", "sft-then-grpo")


def train(out: Path) -> dict[str, float]:
    from training.cli import quiet_libraries
    from training.config import load
    from training.launch import launch

    quiet_libraries()
    walls = {}
    root = Path(__file__).resolve().parents[1] / "training" / "configs" / "smollm2"
    for name in CONFIGS:
        cfg = load(root / f"{name}.toml")
        t = time.perf_counter()
        launch(cfg, str(out), overwrite=True)
        walls[cfg.name] = time.perf_counter() - t  # model load, probe, SFT stage and evaluations included
    # kept beside the runs: `--no-train` summarises them later with the launch times they took
    (out / "walls.json").write_text(json.dumps(walls))
    return walls


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def row(run, wall: float | None) -> dict:
    import polars as pl

    from diag.detect import detect_all
    from diag.summary import accuracy_series, bucket_series
    from training.tasks.word_problems import has_final_answer

    acc, by_bucket = accuracy_series(run.evals), bucket_series(run.evals)
    last = by_bucket.filter(pl.col("step") == acc["step"].max()).sort("bucket")
    items = run.eval_items
    fmt = [float(items.filter(pl.col("step") == s)["completion"].map_elements(has_final_answer, return_dtype=pl.Boolean)
                 .mean()) for s in (acc["step"][0], acc["step"][-1])]
    steps = run.steps

    def share(col: str, upto: int | None = None) -> str:
        s = steps.filter(pl.col("step") <= upto) if upto and "step" in steps.columns else steps
        if col not in s.columns or s.height == 0 or s[col].null_count() == s.height:
            return "n/a"
        return _pct(float(s[col].mean()))

    probe = run.meta.get("probe") or {}
    G = run.meta.get("group_size")
    gaps = [f for f in detect_all(run) if f.kind == "signal_gap" and f.severity != "info"]
    wall = wall if wall is not None else recorded_wall(run)
    return {
        "run": run.name, "kind": run.meta.get("kind"), "wall_s": wall,
        "held-out acc": f"{acc['value'][0]:.2f} -> {acc['value'][-1]:.2f}",
        "per bucket (end)": ", ".join(f"{b} {v:.2f}" for b, v in zip(last["bucket"], last["value"])),
        "final answer stated": f"{_pct(fmt[0])} -> {_pct(fmt[1])}",
        "probe: zero-signal at G": _pct((probe.get("dead_share") or {}).get(str(G))) if probe else "not run",
        "zero-signal, steps 1-5": share("frac_zero_signal", 5),
        "no passing completion, steps 1-5": share("frac_no_pass", 5),
        "zero-signal (TRL's zero std), all steps": share("frac_zero_signal"),
        "no passing completion, all steps": share("frac_no_pass"),
        "signal-gap alert": "; ".join(f"{f.severity} {f.state} at step {f.step}" for f in gaps) or
                            ("none" if steps.height else "n/a"),
    }


def figures(run) -> dict:
    """The numbers the guide's narrative cites for one run, each read from the run (docs/real-model.md)."""
    import polars as pl

    from diag.detect import detect_all
    from diag.summary import accuracy_series, bucket_series
    from training.tasks.word_problems import has_final_answer

    acc, steps = accuracy_series(run.evals), run.steps
    items = run.eval_items

    def mean(col: str, lo: int | None = None, hi: int | None = None) -> float | None:
        s = steps.filter(pl.col("step").is_between(lo or 0, hi or 10 ** 9)) if col in steps.columns else None
        if s is None or s.height == 0 or s[col].null_count() == s.height:
            return None
        return float(s[col].mean())

    last = int(steps["step"].max()) if steps.height else 0
    stated = [float(items.filter(pl.col("step") == s)["completion"]
                    .map_elements(has_final_answer, return_dtype=pl.Boolean).mean()) for s in (acc["step"][0], acc["step"][-1])]
    sizes = bucket_series(run.evals)
    n_items = items.filter(pl.col("step") == acc["step"][-1])
    per_bucket = n_items.group_by("bucket").len() if "bucket" in n_items.columns else pl.DataFrame()
    gaps = [f for f in detect_all(run) if f.kind == "signal_gap" and f.severity != "info"]
    probe = run.meta.get("probe") or {}
    return {
        "steps": last, "evals": acc.height, "held_out_items": int(acc["n"][-1]) if acc.height and acc["n"][-1] else None,
        "acc_start": float(acc["value"][0]), "acc_end": float(acc["value"][-1]),
        "acc_min": float(acc["value"].min()), "acc_max": float(acc["value"].max()),
        "acc_se_end": float((acc["value"][-1] * (1 - acc["value"][-1]) / max(1, acc["n"][-1] or 1)) ** 0.5),
        "stated_start": stated[0], "stated_end": stated[1],
        "no_pass_first5": mean("frac_no_pass", 1, 5), "no_pass_all": mean("frac_no_pass"),
        "all_pass_all": mean("frac_all_pass"), "zero_std_all": mean("frac_zero_signal"),
        "zero_std_last5": mean("frac_zero_signal", last - 4), "clipped_first5": mean("frac_clipped", 1, 5),
        "clipped_last5": mean("frac_clipped", last - 4),
        "probe_dead_share": (probe.get("dead_share") or {}).get(str(run.meta.get("group_size"))),
        "signal_gap_severity": gaps[0].severity if gaps else "none", "signal_gap_step": gaps[0].step if gaps else None,
        "bucket_items_min": int(per_bucket["len"].min()) if per_bucket.height else None,
        "bucket_items_max": int(per_bucket["len"].max()) if per_bucket.height else None,
        "buckets": sizes["bucket"].n_unique() if sizes.height else 0,
    }


def table(rows: list[dict] | dict) -> str:
    """The guide's table (docs/real-model.md): one row per run (`rows`, or the recorded entry)."""
    rows = rows["rows"] if isinstance(rows, dict) else rows
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(f"{v:.0f}" if isinstance(v, float) else str(v) for v in r.values()) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    import diag
    from diag.report import render

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/smollm2")
    p.add_argument("--no-train", action="store_true", help="summarise runs already in --out")
    p.add_argument("--record", action="store_true", help="keep the rows and figures in benchmarks/results.json")
    a = p.parse_args(argv)
    out = Path(a.out)
    saved = out / "walls.json"
    walls = (json.loads(saved.read_text()) if saved.exists() else {}) if a.no_train else train(out)
    names = ["smollm2-grpo", "smollm2-sft-grpo-sft", "smollm2-sft-grpo"]
    runs = [diag.open_run(out / n) for n in names]
    rows = [row(r, walls.get(r.name)) for r in runs]
    if "smollm2-sft-grpo" in walls:  # the launcher times both stages together
        rows[2]["wall_s"] = walls["smollm2-sft-grpo"]
        rows[1]["wall_s"] = recorded_wall(runs[1])
    print(table(rows))
    if a.record:
        from common import record

        short = {"smollm2-grpo": "grpo", "smollm2-sft-grpo-sft": "sft", "smollm2-sft-grpo": "sft_grpo"}
        result = {"rows": rows, **{f"{short[r.name]}_{k}": v for r in runs for k, v in figures(r).items()},
                  **{f"{short[r['run']]}_wall_s": r["wall_s"] for r in rows},
                  "total_wall_min": sum(walls.values()) / 60 if walls else None}  # both launches, as `make smollm2` runs them
        record("smollm2_arms", result)
    (out / "report.html").write_text(render(runs, "html"), encoding="utf-8")
    print(f"report: {out / 'report.html'}; side by side: grpo-diag dashboard --root {out} (compare page)")
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
