"""The offline findings of a run, kept beside it so a cold open does not replay every evaluation.

A 100k-step run holds 10,000 evaluations; replaying the detectors over them costs seconds, every time a
fresh dashboard process opens the run. The findings depend only on the run's rows, the held-out set
judged and the detectors' code, so they are stored as JSON (`findings.json` in the run directory) under
that key and read back while it holds: a run that grew, another set judged, or any change to the code
under diag/detect recomputes them. JSON, never pickle: a runs root may hold directories from anywhere,
and reading one must not run code. A runs root that cannot be written to simply keeps no cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

FILE = "findings.json"
TABLES = ("steps", "groups", "evals", "eval_items", "alerts", "scalars")


@lru_cache(maxsize=1)
def code_version() -> str:
    """A hash of the detectors' source and of the read model they use: a change to either recomputes."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted([*here.glob("*.py"), here.parent / "summary.py", here.parent / "schema.py"]):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def key(run, eval_set: str | None) -> dict:
    """What the findings of `run` depend on: its rows per table, the meta the detectors read, the set judged."""
    rows = {t: run.rows(t) for t in TABLES}  # counted without reading a table not read yet
    meta = {k: run.meta.get(k) for k in ("reward_funcs", "group_size", "reward_range", "probe", "phases")}
    return {"rows": rows, "meta": json.loads(json.dumps(meta, default=str)), "eval_set": eval_set,
            "code": code_version()}


def load(run, eval_set: str | None) -> list[dict] | None:
    """The stored findings when their key matches the run as it stands, else None."""
    path = Path(run.path) / FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key(run, eval_set) or not isinstance(data.get("findings"), list):
        return None
    return data["findings"]


def save(run, eval_set: str | None, findings: list[dict]) -> None:
    """Store findings (as Finding.to_dict gives them) atomically; silently none on a read-only root."""
    path = Path(run.path) / FILE
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({"key": key(run, eval_set), "findings": findings}, default=str))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
