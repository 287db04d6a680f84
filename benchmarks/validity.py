"""Are the verdicts right? Detectors on pre-registered real runs and on generated trajectories.

Real runs: the public logs in ../shared/real_logs (or $GRPO_DIAG_REAL_LOGS), labelled in
benchmarks/real_runs/labels.toml from their series BEFORE any detector ran on them. Each run is
imported with the label file's options, judged by `detect_all`, and compared with what its label
expects; disagreements are printed as misses, and the labels are never changed to fit.
Generated: benchmarks/detection.py's healthy / decoupled / weak trajectories with known onsets.

    python benchmarks/validity.py [--runs 200] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
LABELS = HERE / "real_runs" / "labels.toml"
ALLOWED = {"decoupled": "decoupling", "dead": "signal_gap"}


def real_logs_dir() -> Path:
    return Path(os.environ.get("GRPO_DIAG_REAL_LOGS") or HERE.parent.parent / "shared" / "real_logs")


def expectation_met(expect: str, findings) -> bool:
    alerts = [f for f in findings if f.is_alert]
    if expect == "no_critical":
        return not any(f.severity == "critical" for f in alerts)
    if expect == "no_signal_gap":
        return not any(f.kind == "signal_gap" for f in alerts)
    if expect == "signal_gap":
        return any(f.kind == "signal_gap" for f in alerts)
    if expect == "no_decoupling_critical":
        return not any(f.kind == "decoupling" and f.severity == "critical" for f in alerts)
    if expect == "decoupling":
        return any(f.kind == "decoupling" for f in alerts)
    raise KeyError(f"{LABELS}: unknown expectation {expect!r}")


def judge_real(root: Path, logs: Path) -> list[dict]:
    import diag
    from diag.detect import detect_all
    from diag.importers import import_log

    labels = tomllib.loads(LABELS.read_text())["run"]
    rows = []
    for entry in labels:
        src = logs / entry["path"]
        path, _ = import_log(src, fmt=entry.get("format", "auto"), name=entry["name"], root=str(root),
                             profile=entry.get("profile"), overwrite=True)
        findings = detect_all(diag.open_run(path))
        alerts = [f for f in findings if f.is_alert]
        missed = [e for e in entry.get("expect", []) if not expectation_met(e, findings)]
        dec = [f for f in alerts if f.kind == "decoupling"]
        rows.append({"name": entry["name"], "label": entry["label"], "missed": missed,
                     "alerts": [f"{f.severity} {f.kind} ({f.state}, onset {f.onset})" for f in alerts],
                     "flagged": bool(alerts),
                     # a critical alert the label does not call for (decoupled: decoupling; dead: signal gap)
                     "false_critical": any(f.severity == "critical" and f.kind != ALLOWED.get(entry["label"])
                                           for f in alerts),
                     "decoupling_steps": [f.step for f in dec]})
    return rows


def real_table(rows: list[dict]) -> str:
    lines = ["| label | runs | flagged (any alert) | verdict as pre-registered | false critical alerts | misses |",
             "|---|---|---|---|---|---|"]
    for label in ("healthy", "plateau", "collapse", "saturated", "dead", "decoupled"):
        rs = [r for r in rows if r["label"] == label]
        if not rs:
            lines.append(f"| {label} | 0 | - | - | - | none labelled |")
            continue
        miss = "; ".join(f"{r['name']}: {', '.join(r['missed'])} ({'; '.join(r['alerts'])})" for r in rs if r["missed"])
        lines.append(f"| {label} | {len(rs)} | {sum(r['flagged'] for r in rs)} | {sum(not r['missed'] for r in rs)}/{len(rs)} "
                     f"| {sum(r['false_critical'] for r in rs)} | {miss or 'none'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=200, help="generated trajectories per kind")
    p.add_argument("--markdown", action="store_true")
    a = p.parse_args(argv)
    logs = real_logs_dir()
    out: dict = {}
    if logs.is_dir():
        with tempfile.TemporaryDirectory() as tmp:
            rows = judge_real(Path(tmp), logs)
        out["real"] = rows
        for r in rows:
            print(f"{'ok  ' if not r['missed'] else 'MISS'} {r['name']:<28} {r['label']:<10} "
                  f"{'; '.join(r['alerts']) or 'no alert'}" + (f"  [expected {', '.join(r['missed'])}]" if r["missed"] else ""))
        print("\nReal runs (labels pre-registered in benchmarks/real_runs/labels.toml):\n")
        print(real_table(rows))
    else:
        print(f"real logs not found at {logs} (set GRPO_DIAG_REAL_LOGS): real-run table skipped")
    sys.path.insert(0, str(HERE))
    import detection

    gen = detection.score(a.runs, 0)
    out["generated"] = gen
    print(f"\nGenerated trajectories ({a.runs} per kind, seed 0, {gen['seconds']:.0f} s):\n")
    print(detection.markdown(gen))
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    main()
