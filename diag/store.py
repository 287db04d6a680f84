"""The run store: `runs/<name>/run.json` plus append-only Parquet segments, one folder per table.

Writes are atomic (temp file in the same folder, fsync, rename), so a reader that lists a folder
never sees half a segment and a killed trainer leaves every flushed segment readable. Segments are
named by the flush sequence range they cover (`seg-000001-000001.parquet`); compaction writes one
segment covering a range and then removes the pieces, and readers drop any segment whose range lies
inside another, so a reader racing a compaction sees each row once. A reader reads the large
`groups` table only when asked (LAZY), and a page may ask for some of its columns only.

Long on purpose: the writer and the reader share the segment naming and the compaction rule, and the
storage layer imports nothing from the package but the schema (tests/test_layering.py); two modules
would split one file format.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from diag import schema

RUN_FILE = "run.json"
SEGMENT_RE = re.compile(r"^seg-(\d{6,})-(\d{6,})\.parquet$")
# A running run whose heartbeat is older than this (and whose process is gone) is shown as crashed.
STALE_AFTER_S = 60.0
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class StoreError(RuntimeError):
    """The run directory cannot be written or read; the message says which path and what to do."""


def check_run_name(name: str) -> str:
    """Run names become directory names and URL parts: letters, digits, '.', '_' and '-' only."""
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        raise ValueError(
            f"invalid run name {name!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit and without '..'"
        )
    return name


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: dict) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, default=str, allow_nan=False).encode())


def json_safe(obj: Any) -> Any:
    """Valid JSON for any tool: NaN / inf become null, numpy scalars plain numbers, keys strings."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return json_safe(obj.item())
    return obj


def _pid_alive(pid: int | None, host: str | None) -> bool | None:
    """True/False for a process on this host; None when we cannot tell (another host)."""
    if not pid or host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def effective_status(meta: dict, now: float | None = None) -> str:
    """The status to show: a 'running' run whose writer is gone or silent is 'crashed'."""
    status = meta.get("status", "running")
    if status != "running":
        return status
    alive = _pid_alive(meta.get("pid"), meta.get("host"))
    if alive is False:
        return "crashed"
    beat = meta.get("heartbeat") or meta.get("created") or 0
    if alive is None and (now or time.time()) - float(beat) > STALE_AFTER_S:
        return "crashed"
    return "running"


# ----------------------------------------------------------------------------------------- writer


@dataclass
class RunWriter:
    """Owns one run directory. Only the main process of a job creates one."""

    path: Path
    meta: dict
    _seq: int = 0
    _segments: dict[str, list[Path]] = field(default_factory=dict)

    @classmethod
    def create(cls, root: str | os.PathLike, name: str, meta: dict, overwrite: bool = False) -> "RunWriter":
        check_run_name(name)
        path = Path(root) / name
        try:
            if (path / RUN_FILE).exists():
                if not overwrite:
                    raise StoreError(
                        f"{path}: a run named {name!r} already exists; pick another --name, or pass "
                        "overwrite=True / --overwrite to replace it"
                    )
                shutil.rmtree(path)
            path.mkdir(parents=True, exist_ok=True)
            for table in schema.TABLES:
                (path / table).mkdir(exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create run directory {path}: {e.strerror or e}") from e
        now = time.time()
        full = {
            "schema_version": schema.SCHEMA_VERSION,
            "name": name,
            "status": "running",
            "created": now,
            "heartbeat": now,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            **meta,
        }
        w = cls(path=path, meta=full)
        w._seq = w._last_seq()
        w.write_meta()
        return w

    def _last_seq(self) -> int:
        last = 0
        for table in schema.TABLES:
            for p in (self.path / table).glob("seg-*.parquet"):
                m = SEGMENT_RE.match(p.name)
                if m:
                    last = max(last, int(m.group(2)))
        return last

    def write_meta(self, **updates: Any) -> None:
        self.meta.update(updates)
        self.meta["heartbeat"] = time.time()
        try:
            atomic_write_json(self.path / RUN_FILE, json_safe(self.meta))
        except OSError as e:
            raise StoreError(f"cannot write {self.path / RUN_FILE}: {e.strerror or e}") from e

    def append(self, table: str, df: pl.DataFrame) -> Path | None:
        """Write one segment of `table` (already conformed). Empty frames write nothing."""
        if df.height == 0:
            return None
        self._seq += 1
        seg = self.path / table / f"seg-{self._seq:06d}-{self._seq:06d}.parquet"
        tmp = seg.with_name(f".{seg.name}.tmp")
        try:
            df.write_parquet(tmp, compression="zstd", statistics=False)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, seg)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            self._seq -= 1
            raise StoreError(
                f"cannot write {seg}: {e.strerror or e}. Free disk space or make the runs directory "
                "writable; rows not yet written stay buffered and are retried at the next flush."
            ) from e
        self._segments.setdefault(table, []).append(seg)
        return seg

    def compact(self, table: str) -> None:
        """Merge a table's segments into one (at close): fewer files for readers of long runs."""
        segs = _live_segments(self.path / table)
        if len(segs) < 2:
            return
        lo, hi = segs[0][0], max(s[1] for s in segs)
        df = pl.concat([pl.read_parquet(p) for _, _, p in segs], how="vertical_relaxed")
        out = self.path / table / f"seg-{lo:06d}-{hi:06d}.parquet"
        tmp = out.with_name(f".{out.name}.tmp")
        df.write_parquet(tmp, compression="zstd")
        os.replace(tmp, out)
        for _, _, p in segs:
            if p != out:
                p.unlink(missing_ok=True)


def _live_segments(folder: Path) -> list[tuple[int, int, Path]]:
    """Segments sorted by range, skipping those covered by a compacted one."""
    found = []
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    for n in names:
        m = SEGMENT_RE.match(n)
        if m:
            found.append((int(m.group(1)), int(m.group(2)), folder / n))
    found.sort(key=lambda s: (s[0], -s[1]))
    out: list[tuple[int, int, Path]] = []
    covered_to = 0
    for lo, hi, p in found:
        if hi <= covered_to:
            continue  # inside a compacted segment listed before it
        out.append((lo, hi, p))
        covered_to = max(covered_to, hi)
    return out


# ----------------------------------------------------------------------------------------- reader

# Tables read when first asked for, not when a run is opened: a 100,000-step run holds 6.4 million group
# rows (1.4 GB in memory, most of a second to read) that a page with its findings cached needs 4 columns of.
LAZY = ("groups",)


def _read_segment(table: str, path: Path, cols: list[str] | None = None) -> pl.DataFrame | None:
    """One segment checked against the schema (only `cols` when given), or None if a compaction removed it."""
    try:
        df = pl.read_parquet(path, columns=None if cols is None else [c for c in cols if c in _segment_columns(path)])
    except FileNotFoundError:
        return None
    except Exception as e:  # noqa: BLE001 - any decode failure is reported with its path
        raise StoreError(f"{path}: unreadable Parquet segment ({e}); move it aside to open the run") from e
    return schema.check_frame(table, df, str(path), cols)


def _segment_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows
    except FileNotFoundError:
        return 0  # removed by a compaction after listing: its rows are in the compacted segment


def _segment_columns(path: Path) -> set[str]:
    return set(pl.read_parquet_schema(path))


class Run:
    """A run directory opened for reading; tables are polars DataFrames, refreshed incrementally.

    `refresh()` reads only segments that appeared since the last call, so a dashboard polling a live
    run costs in proportion to what was added, not to the run's length.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not (self.path / RUN_FILE).is_file():
            raise StoreError(
                f"{self.path}: not a grpo-diag run (no {RUN_FILE}). Point at a folder created by "
                "`grpo-diag train`, `grpo-diag import` or diag.Recorder."
            )
        self.meta: dict = {}
        self._frames: dict[str, pl.DataFrame] = {t: schema.empty(t) for t in schema.TABLES}
        self._seen: dict[str, set[str]] = {t: set() for t in schema.TABLES}
        self._covered: dict[str, int] = {t: 0 for t in schema.TABLES}
        self._steps_cache: tuple[tuple, pl.DataFrame] | None = None
        self._unread: set[str] = set(LAZY)  # tables listed but not read yet
        # a dashboard's callbacks run in threads: one of them reads a LAZY table while the others wait for it
        self._lock = threading.RLock()
        self._narrow_lock = threading.Lock()
        self._listed: dict[str, set[str]] = {t: set() for t in LAZY}
        self._narrow: dict[tuple, tuple[tuple, pl.DataFrame]] = {}  # (table, columns) -> (segments read, frame)
        self.refresh()

    @property
    def name(self) -> str:
        return self.meta.get("name", self.path.name)

    @property
    def status(self) -> str:
        return effective_status(self.meta)

    def _read_meta(self) -> dict:
        p = self.path / RUN_FILE
        try:
            meta = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise StoreError(f"{p}: invalid JSON at line {e.lineno} ({e.msg}); restore it or re-import") from e
        version = meta.get("schema_version", 0)
        if not isinstance(version, int) or version > schema.SCHEMA_VERSION:
            raise StoreError(
                f"{p}: key 'schema_version' is {version!r} but this grpo-diag reads up to "
                f"{schema.SCHEMA_VERSION}; upgrade grpo-diag to read this run"
            )
        return meta

    def refresh(self) -> dict[str, int]:
        """Read new segments; returns the number of new rows per table (for a table not read yet, the
        number of new segments: something was added)."""
        with self._lock:
            self.meta = self._read_meta()
            added = {}
            for table in schema.TABLES:
                if table in self._unread:
                    listed = {p.name for _, _, p in _live_segments(self.path / table)}
                    added[table] = len(listed - self._listed[table])
                    self._listed[table] = listed
                else:
                    added[table] = self._read_new(table)
            return added

    def _read_new(self, table: str) -> int:
        segs = _live_segments(self.path / table)
        new = [(lo, hi, p) for lo, hi, p in segs if p.name not in self._seen[table]]
        # A compacted segment replaces pieces we already hold: skip it when it holds nothing new,
        # and re-read the table when it also holds rows we have not seen (a compaction raced us).
        new = [(lo, hi, p) for lo, hi, p in new if hi > self._covered[table]]
        base = self._frames[table]
        if any(lo <= self._covered[table] for lo, _, _ in new):
            new, base = segs, schema.empty(table)
            self._seen[table], self._covered[table] = set(), 0
        frames = []
        for lo, hi, p in new:
            df = _read_segment(table, p)
            if df is None:
                continue  # removed by a compaction between listing and reading
            frames.append(df)
            self._seen[table].add(p.name)
            self._covered[table] = max(self._covered[table], hi)
        if frames or base is not self._frames[table]:
            self._frames[table] = pl.concat([base, *frames], how="vertical")
        return sum(f.height for f in frames)

    def _table(self, table: str) -> pl.DataFrame:
        """A table, read on first use if it is one of the LAZY ones."""
        if table in self._unread:
            with self._lock:
                if table in self._unread:  # not read by another thread while this one waited
                    self._read_new(table)
                    self._unread.discard(table)
        return self._frames[table]

    def rows(self, table: str) -> int:
        """A table's row count; for a LAZY table not read yet, from its segments' Parquet footers."""
        if table not in self._unread:
            return self._frames[table].height
        return sum(_segment_rows(p) for _, _, p in _live_segments(self.path / table))

    def columns(self, table: str, cols: list[str]) -> pl.DataFrame:
        """Some columns of a table. A LAZY table not read yet is read for these columns only (a long run's
        page needs 4 of the groups table's 23 columns: a tenth of the time and memory), kept between calls
        and extended by the segments that appear since; any change of a segment read before (a compaction)
        reads the columns afresh."""
        with self._narrow_lock:  # not the reading lock: a detector reading the whole table does not hold a page up
            return self._columns(table, cols)

    def _columns(self, table: str, cols: list[str]) -> pl.DataFrame:
        if table not in self._unread:
            return self._frames[table].select(cols)
        key = (table, tuple(cols))
        # columns kept for an earlier, wider request serve a narrower one (a page and a detector share a read)
        wider = [k for k in self._narrow if k[0] == table and set(cols) < set(k[1])]
        if wider:
            return self._columns(table, list(max(wider, key=lambda k: len(k[1]))[1])).select(cols)
        names, frame = self._narrow.get(key, ((), None))
        segs = _live_segments(self.path / table)
        now = tuple(p.name for _, _, p in segs)
        if frame is None or not set(names) <= set(now):
            names, frame = (), schema.empty(table).select(cols)
        parts = [frame]
        for _, _, p in segs:
            if p.name not in names:
                df = _read_segment(table, p, cols)
                if df is not None:
                    parts.append(df)
        frame = pl.concat(parts, how="vertical") if len(parts) > 1 else frame
        self._narrow[key] = (now, frame)
        return frame

    def table(self, name: str) -> pl.DataFrame:
        return self._table(name)

    @property
    def groups(self) -> pl.DataFrame:
        return self._table("groups")

    @property
    def evals(self) -> pl.DataFrame:
        return self._frames["evals"]

    @property
    def eval_items(self) -> pl.DataFrame:
        return self._frames["eval_items"]

    @property
    def completions(self) -> pl.DataFrame:
        return self._frames["completions"]

    @property
    def alerts(self) -> pl.DataFrame:
        """One row per alert: a later row with the same id (a notification's delivery result) wins."""
        a = self._frames["alerts"]
        if a.height == 0:
            return a
        keyed = a.with_columns(pl.coalesce(pl.col("id"), pl.int_range(pl.len()).cast(pl.String)).alias("_k"))
        return keyed.unique("_k", keep="last", maintain_order=True).drop("_k").sort("step")

    @property
    def scalars(self) -> pl.DataFrame:
        return self._frames["scalars"]

    @property
    def steps(self) -> pl.DataFrame:
        """Group aggregates per step, joined with the trainer's own scalars (one column per key).
        Built once per change of the underlying tables: pages and detectors read it many times. What
        is derived from it (phases, per-prompt history, every series shown) is the read model's
        (diag.summary and the modules it owns), never this storage class's."""
        key = (self._frames["steps"].height, self._frames["scalars"].height)
        if self._steps_cache is None or self._steps_cache[0] != key:
            self._steps_cache = (key, self._joined_steps())
        return self._steps_cache[1]

    def _joined_steps(self) -> pl.DataFrame:
        steps = self._frames["steps"]
        # a scalar logged under the name "step" would collide with the pivot's index: keep it renamed
        sc = self._frames["scalars"].filter(pl.col("mode") == schema.TRAIN).with_columns(
            pl.when(pl.col("key") == "step").then(pl.lit("trainer/step")).otherwise(pl.col("key")).alias("key"))
        if sc.height == 0:
            return steps
        wide = sc.pivot(on="key", index="step", values="value", aggregate_function="last")
        clash = [c for c in wide.columns if c in steps.columns and c != "step"]
        wide = wide.rename({c: f"trainer/{c}" for c in clash})
        # a full join even without step rows: the steps table's columns are always there (a log with
        # trainer scalars only still has reward_mean, null)
        return steps.join(wide.cast({"step": steps.schema["step"]}), on="step", how="full", coalesce=True).sort("step")

    @property
    def reward_funcs(self) -> list[str]:
        return list(self.meta.get("reward_funcs", []))

    def __repr__(self) -> str:
        return f"Run({self.name!r}, status={self.status}, steps={self._frames['steps'].height})"


def open_run(path: str | os.PathLike) -> Run:
    """Open a run directory for reading (works while the run is still being written)."""
    return Run(path)


def list_runs(root: str | os.PathLike) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / RUN_FILE).is_file())
