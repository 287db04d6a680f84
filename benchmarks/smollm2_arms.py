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
import sys
import time
from pathlib import Path

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
    return walls


def recorded_wall(run) -> float:
    """Seconds from the run's creation to its end, as the store recorded them (no model load or probe)."""
    return run.meta.get("finished", 0) - run.meta.get("created", 0)


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


def table(rows: list[dict]) -> str:
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
    a = p.parse_args(argv)
    out = Path(a.out)
    walls = {} if a.no_train else train(out)
    names = ["smollm2-grpo", "smollm2-sft-grpo-sft", "smollm2-sft-grpo"]
    runs = [diag.open_run(out / n) for n in names]
    rows = [row(r, walls.get(r.name)) for r in runs]
    if "smollm2-sft-grpo" in walls:  # the launcher times both stages together
        rows[2]["wall_s"] = walls["smollm2-sft-grpo"]
        rows[1]["wall_s"] = recorded_wall(runs[1])
    print(table(rows))
    (out / "report.html").write_text(render(runs, "html"), encoding="utf-8")
    print(f"report: {out / 'report.html'}; side by side: grpo-diag dashboard --root {out} (compare page)")
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
