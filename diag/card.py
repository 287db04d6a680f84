"""A run's card: the line a list of runs shows (status, headline numbers, alerts, how it ends), kept beside
the run so a list of hundreds of runs reads one small file per run instead of opening every run.

`card.json` holds the line and the stamp it was made under: the names of the run's segment files (a
recorder adds segments, a compaction renames them), the size and time of its run.json (its status) and
the detectors' code version. A card whose stamp no longer matches is ignored and made again. `grpo-diag
check` writes the cards of the runs it judges with default options, as the dashboard does; a read-only
root simply keeps none. JSON, never pickle: reading a runs root must not run code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePath

from diag.store import RUN_FILE

FILE = "card.json"
TABLES = ("steps", "groups", "evals", "eval_items", "alerts", "scalars", "completions")
JUDGING = "judging..."  # the verdict of a run whose first judgement has not come in yet


def stamp(path: str | Path) -> dict:
    """What the card of the run at `path` depends on, read without opening the run."""
    from diag.detect.cache import code_version  # lazy: the detectors' source hash, computed once

    path = Path(path)
    segs = {}
    for t in TABLES:
        try:
            segs[t] = sorted(n for n in os.listdir(path / t) if n.endswith(".parquet"))
        except OSError:
            segs[t] = []
    st = (path / RUN_FILE).stat()
    return {"segments": segs, "run_json": [st.st_size, st.st_mtime_ns], "code": code_version()}


def load(path: str | Path) -> dict | None:
    """The run's card line when its stamp matches the run as it stands, else None."""
    try:
        data = json.loads((Path(path) / FILE).read_text())
        ok = isinstance(data, dict) and isinstance(data.get("row"), dict) and data.get("stamp") == stamp(path)
    except (OSError, ValueError):
        return None
    return data["row"] if ok else None


def save(path: str | Path, row: dict) -> None:
    """Keep the card beside the run (atomically); none while its verdict is still being judged."""
    if row.get("verdict") == JUDGING:
        return
    path = Path(path)
    tmp = path / f"{FILE}.{os.getpid()}.tmp"
    try:
        tmp.write_text(json.dumps({"stamp": stamp(path), "row": row}, default=str))
        os.replace(tmp, path / FILE)
    except OSError:
        tmp.unlink(missing_ok=True)


def row(run, findings: list[dict] | None) -> dict:
    """The card line of a run (a diag.Run) with its findings (Finding.to_dict's; None: not judged yet)."""
    from diag.summary import summarize  # lazy: the read model, for a run being listed

    s = summarize(run)
    alerts = [f for f in findings or [] if f["severity"] != "info"]
    stored = run.alerts
    kinds = sorted({f["kind"] for f in alerts} | set(stored["kind"].to_list() if stored.height else []))
    v = verdict_of(findings)
    return {"run": run.name, "status": s["status"], "kind": s.get("kind") or run.meta.get("format") or "",
            "model": model_label(s.get("model")), "task": s.get("task") or "", "steps": s["steps"],
            "reward": _r(s["reward_last"]), "accuracy": _r(s["accuracy_last"]), "all_fail": _r(s["frac_all_fail_mean"]),
            "alerts": ", ".join(kinds) if findings is not None else JUDGING, "verdict": v["ends"], "worst": v["worst"]}


def verdict_of(findings: list[dict] | None) -> dict:
    """How a run ends, in the words of `grpo-diag check` (diag.detect.verdict.end_verdict), and the worst
    severity still firing; 'judging...' without findings yet."""
    if findings is None:
        return {"ends": JUDGING, "worst": ""}
    from diag.detect.base import Finding  # lazy: the detectors, for a run being listed
    from diag.detect.verdict import end_verdict  # lazy: likewise

    v = end_verdict([Finding.from_dict(f) for f in findings], None)
    return {"ends": ", ".join(v["ends"]), "worst": v["worst_firing"] or ""}


def _r(x):
    return None if x is None else round(float(x), 3)


def model_label(model) -> str:
    """What every page calls a model: a Hub id as is; a local path by its folder name (a checkpoint
    folder with its parent's name); anything longer than 48 characters cut from the left."""
    text = str(model or "")
    if text.startswith(("/", "./", "~")) or text.count("/") > 1:
        p = PurePath(text)
        text = f"{p.parent.name}/{p.name}" if p.name in ("checkpoint", "best-checkpoint") or p.name.startswith("step-") \
            else p.name
    return text if len(text) <= 48 else "..." + text[-45:]
