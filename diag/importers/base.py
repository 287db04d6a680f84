"""What every importer produces, and the one place that writes it to the run store.

An importer turns a foreign log into a `Parsed`: step rows (mapped onto the `steps` table where the
meaning matches), every other number as a trainer scalar, and evaluations when the log holds a
held-out metric. `write_run` writes it into a temporary directory and renames it into place, so a
failed import leaves nothing half-written behind.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from diag import schema
from diag.store import RUN_FILE, RunWriter, StoreError, check_run_name


class ImportFailure(ValueError):
    """Malformed input: the message names the file, the line or key, and what was expected."""




@dataclass
class Parsed:
    source: str  # the file it came from
    format: str
    meta: dict = field(default_factory=dict)
    steps: list[dict] = field(default_factory=list)
    scalars: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    fields: set[str] = field(default_factory=set)  # every key the source had
    notes: list[str] = field(default_factory=list)  # what the importer chose, and why


def jsonl_lines(path: Path, hint: str) -> list[tuple[int, object]]:
    """(line number, decoded value) for each non-blank line of a JSONL file; a line that is not JSON
    fails with the file, the line number and `hint` (what the format expects)."""
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((i, json.loads(line)))
        except json.JSONDecodeError as e:
            raise ImportFailure(f"{path}: line {i} is not JSON ({e.msg}); {hint}") from e
    return out


def finite(v) -> float | None:
    """A float the store can hold: NaN, inf and absurd magnitudes become None (and are counted)."""
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(f) or abs(f) > 1e300:
        return None
    return f


@contextmanager
def staged_run(root: str | os.PathLike, name: str, overwrite: bool = False) -> Iterator[Path]:
    """A temporary runs root to write run `name` into; renamed into place when the block ends without
    an error, removed either way, so a failed import leaves nothing half-written behind."""
    check_run_name(name)
    root = Path(root)
    final = root / name
    if (final / RUN_FILE).exists() and not overwrite:
        raise StoreError(f"{final}: a run named {name!r} already exists; pass --name or --overwrite")
    tmp_root = root / f".import-{name}-{os.getpid()}"
    shutil.rmtree(tmp_root, ignore_errors=True)
    try:
        yield tmp_root
        if final.exists():
            shutil.rmtree(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_root / name, final)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)


def write_run(p: Parsed, root: str | os.PathLike, name: str, overwrite: bool = False) -> Path:
    with staged_run(root, name, overwrite) as tmp_root:
        meta = {"source": "import", "imported_from": p.source, "format": p.format, "imported": time.time(),
                "fields": sorted(p.fields), "import_notes": p.notes, **p.meta}
        w = RunWriter.create(tmp_root, name, meta)
        for table, rows in (("steps", p.steps), ("scalars", p.scalars), ("evals", p.evals)):
            if rows:
                w.append(table, schema.conform(table, rows))
        w.write_meta(status="finished", finished=time.time(), pid=None)
    return Path(root) / name
