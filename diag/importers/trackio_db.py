"""Trackio projects: the SQLite database Trackio keeps per project (`~/.cache/huggingface/trackio/<project>.db`,
or any `.db` it wrote), opened read-only.

Trackio's own reading functions (`SQLiteStorage.get_logs`) find a database by project name under
TRACKIO_DIR only, so a database elsewhere is opened here read-only and its rows decoded with Trackio's own
`deserialize_values` (NaN and infinities are stored as strings). Trackio's `step` counts log calls when the
logger gives none (transformers' callback): the trainer's step rides along as `train/global_step`.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from diag.importers.base import ImportFailure
from diag.importers.logged import Logged, need, pick_run


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)


def sniff(path: Path) -> bool:
    try:
        with _connect(path) as con:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error:
        return False
    return "metrics" in tables and "experiments" not in tables and "alembic_version" not in tables


def read(path: str | Path, run: str | None = None) -> Logged:
    utils = need("trackio.utils", "Trackio projects")
    path = Path(path)
    try:
        with _connect(path) as con:
            runs = [r[0] for r in con.execute("SELECT run_name FROM metrics GROUP BY run_name ORDER BY MIN(id)")]
            name = runs[pick_run(str(path), "Trackio", [(r,) for r in runs], run)]
            raw = con.execute("SELECT step, metrics FROM metrics WHERE run_name = ? ORDER BY timestamp, id",
                              (name,)).fetchall()
            try:
                cfg = con.execute("SELECT config FROM configs WHERE run_name = ? ORDER BY id DESC LIMIT 1",
                                  (name,)).fetchone()
            except sqlite3.OperationalError:  # an older project without a configs table
                cfg = None
    except sqlite3.OperationalError as e:
        why = ("locked by a process writing it; try again in a moment, or follow it with `grpo-diag watch`"
               if "locked" in str(e) else str(e))
        raise ImportFailure(f"{path}: the Trackio database could not be read: {why}") from e
    except sqlite3.DatabaseError as e:
        raise ImportFailure(f"{path}: not a readable SQLite database ({e})") from e
    rows = []
    for step, blob in raw:
        try:
            values = utils.deserialize_values(json.loads(blob))
        except (json.JSONDecodeError, TypeError):
            continue
        rows.append((int(step), {k: v for k, v in values.items() if not k.startswith("_")}))
    config = {}
    if cfg:
        try:
            config = {k: v for k, v in json.loads(cfg[0]).items() if not k.startswith("_")}
        except (json.JSONDecodeError, AttributeError):
            config = {}
    logged = Logged(source=str(path), fmt="trackio", rows=rows, config=config,
                    meta={"name": name, "project": path.stem})
    logged.notes.append(f"Trackio run {name!r} of project {path.stem!r}: {len(rows)} logged rows")
    return logged
