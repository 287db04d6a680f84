"""What every benchmark script does at the end: print its figures, optionally save them as JSON, and
with `--record` keep them in the one results file the docs render (benchmarks/results.json: per
benchmark, the figures with the machine, the date and the command that produced them)."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.json"


def report(result: dict, json_path: str | None = None, record_as: str | None = None) -> dict:
    width = max(len(k) for k in result) + 2
    for k, v in result.items():
        print(f"{k:{width}s} {v:,.4f}" if isinstance(v, float) else f"{k:{width}s} {v}")
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2, default=str))
    if record_as:
        record(record_as, result)
    return result


def recorded_wall(run) -> float:
    """Seconds from a run's creation to its end, as its store recorded them (no imports, model load or probe
    before the run was created)."""
    return float(run.meta.get("finished", 0) - run.meta.get("created", 0))


def record(name: str, result: dict, path: Path = RESULTS) -> None:
    """Replace benchmark `name`'s entry in the results file with `result`, where, when and how it ran."""
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = {"when": time.strftime("%Y-%m-%d"),
                  "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
                  "command": "python " + " ".join([_relative(sys.argv[0]), *[a for a in sys.argv[1:] if a != "--record"]]),
                  "result": json.loads(json.dumps(result, default=str))}
    path.write_text(json.dumps(dict(sorted(data.items())), indent=1) + "\n")


def _relative(script: str) -> str:
    try:
        return str(Path(script).resolve().relative_to(Path(__file__).resolve().parents[1]))
    except ValueError:
        return script
