"""`grpo-diag watch`: follow a log another engine is writing, and judge it live.

verl, OpenRLHF and hand-written loops write their numbers to files while they train. The follower reads
what an importer reads, as it grows, into a run store marked `running`, with the online monitor judging
every new step and evaluation: alerts reach the console, the `alerts` table and notification targets
while the run still has hours to go, and the dashboard shows it live.

How it reads, so a writer is never slowed and nothing is read twice or lost:
- each poll looks at the file's size and modification time only; when they changed, the complete lines
  written so far (up to the last newline: a half-written line waits for its end) are parsed by the same
  parser as `grpo-diag import` (diag.importers.parse_log). A JSONL line that is not JSON is named with
  its file and line once, counted, and skipped; the watch goes on. A `trainer_state.json`, rewritten
  whole by the Hugging Face Trainer, is read when it parses (a half-written rewrite waits for the next poll).
- rows are committed by step: a step is stored once a later step has appeared (its last line may still
  be coming), each table holding exactly the steps above what it already stores, so a watcher killed at
  any point and started again resumes from the store: no step twice, none lost.
- it stops at the format's final marker (a trainer_state.json at `max_steps`), after `idle` seconds
  without new data, or on Ctrl-C: everything seen is committed, and the run is marked `finished` (final
  marker) or `stale` (the writer went quiet or the watch was stopped: the run may not be over).

Reading is O(file) per change: a long run costs a parse per poll, not memory (only the watermarks and the
monitor's bounded state are kept).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from diag import schema
from diag.importers import STREAMED, ImportFailure, default_name, detect_format, parse_log
from diag.importers.base import Parsed
from diag.alerts import delivery_state
from diag.monitor import Monitor, MonitorConfig
from diag.store import RUN_FILE, RunWriter, StoreError, open_run

TABLES = ("steps", "scalars", "evals")
JSONL_FORMATS = ("verl-file", "tinker", "generic")


@dataclass
class WatchOptions:
    fmt: str = "auto"
    name: str | None = None
    root: str = "runs"
    interval: float = 2.0  # seconds between polls
    idle: float | None = 600.0  # seconds without new data before the run is called stale; None: never
    import_options: dict = field(default_factory=dict)  # accuracy_key, logging_steps, maps, profile, eval_size, ...
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    max_polls: int | None = None  # tests: stop after this many polls


class _AlertLog:
    """What the monitor's store sink needs of a recorder: the run's path and an alerts appender."""

    def __init__(self, writer: RunWriter):
        self.writer, self.path = writer, writer.path

    def log_alert(self, row: dict) -> None:
        self.writer.append("alerts", schema.conform("alerts", [{"wall_time": time.time(), **row}]))


class Follower:
    def __init__(self, source: str | Path, opts: WatchOptions | None = None, out=sys.stdout):
        self.source = Path(source)
        self.opts = opts or WatchOptions()
        self.out = out
        self.fmt = self.opts.fmt
        self.seen: tuple[int, float] | None = None  # (size, mtime) at the last read
        self.bad_lines: set[int] = set()
        self.writer: RunWriter | None = None
        self.monitor: Monitor | None = None
        self.marks: dict[str, int] = {}  # table -> highest step stored
        self.parsed: Parsed | None = None
        self.last_change = time.monotonic()

    # --------------------------------------------------------------------------------------- reading

    def _snapshot(self) -> Path | None:
        """The part of the source written so far that a parser can read, as a file: complete lines (JSONL
        without its malformed ones), or the whole JSON when it parses; None while nothing usable is there."""
        path = self.source / "trainer_state.json" if self.source.is_dir() else self.source
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if self.fmt == "trainer-state":
            try:
                json.loads(data)
            except (json.JSONDecodeError, UnicodeDecodeError):
                return None  # a rewrite in progress: read it at the next poll
            kept = data
        else:
            kept = data[: data.rfind(b"\n") + 1]  # a line without its newline is still being written
            if self.fmt in JSONL_FORMATS and path.suffix != ".csv":
                kept = self._drop_malformed(path, kept)
        if not kept.strip():
            return None
        tmp = Path(self._tmp.name) / path.name
        tmp.write_bytes(kept)
        return tmp

    def _drop_malformed(self, path: Path, data: bytes) -> bytes:
        lines = data.split(b"\n")
        good = []
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                if i not in self.bad_lines:
                    self.bad_lines.add(i)
                    self._say(f"{path}: line {i} is not JSON ({getattr(e, 'msg', e)}); skipped "
                              f"({len(self.bad_lines)} so far)")
                continue
            good.append(line)
        return b"\n".join(good) + b"\n" if good else b""

    def _changed(self) -> bool:
        path = self.source / "trainer_state.json" if self.source.is_dir() else self.source
        try:
            st = path.stat()
        except FileNotFoundError:
            return False
        now = (st.st_size, st.st_mtime)
        if now == self.seen:
            return False
        self.seen = now
        return True

    # --------------------------------------------------------------------------------------- store

    def _open(self, parsed: Parsed) -> None:
        """The run store: resumed when a watch of this source wrote it, else created (status running)."""
        name = self.opts.name or default_name(self.source)
        path = Path(self.opts.root) / name
        meta = {"source": "watch", "watching": str(self.source.resolve()), "format": parsed.format,
                "imported_from": str(self.source), "fields": sorted(parsed.fields),
                "import_notes": parsed.notes, **parsed.meta}
        if (path / RUN_FILE).exists():
            old = open_run(path)
            if old.meta.get("watching") != meta["watching"]:
                raise StoreError(f"{path}: a run named {name!r} exists and was not written by a watch of "
                                 f"{self.source}; pass --name")
            self.writer = RunWriter(path=path, meta=dict(old.meta))
            self.writer._seq = self.writer._last_seq()
            self.writer.write_meta(status="running", pid=os.getpid())
            for t in TABLES:
                frame = old.table(t)
                self.marks[t] = int(frame["step"].max()) if frame.height else -1
            self._start_monitor(replay=old)
            self._say(f"resumed {path}: steps up to {self.marks['steps']} already stored")
        else:
            self.writer = RunWriter.create(self.opts.root, name, meta)
            self.marks = {t: -1 for t in TABLES}
            self._start_monitor(replay=None)
            self._say(f"watching {self.source} ({parsed.format}) into {path}")

    def _start_monitor(self, replay) -> None:
        funcs = list(self.writer.meta.get("reward_funcs") or [])
        log = _AlertLog(self.writer)
        self.monitor = Monitor(log, self.opts.monitor, run_name=self.writer.path.name, func_names=funcs,
                               group_size=self.writer.meta.get("group_size"))
        if replay is not None:  # rebuild the detectors' state from what is stored, without alerting again
            d = self.monitor.dispatcher
            sinks, d.sinks = d.sinks, []
            _feed(self.monitor, replay.steps, replay.evals)
            d.sinks = sinks
            # ... except what a kill cut off between storing a step and alerting on it
            stored = {r["id"]: (r["severity"], r["state"]) for r in replay.table("alerts").iter_rows(named=True)}
            for key, f in d.sent.items():
                if stored.get(key) != (f.severity, f.state):
                    for sink in sinks:
                        sink.send(f, {"run": d.run, "delivered": delivery_state(sinks)})

    def _commit(self, parsed: Parsed, final: bool) -> int:
        """Store the rows of steps above each table's mark and below the frontier (the latest step seen,
        whose lines may still be coming; included at the end); feed them to the monitor. Rows committed."""
        frontier = max((int(r["step"]) for t in TABLES for r in getattr(parsed, t)), default=-1)
        new: dict[str, pl.DataFrame] = {}
        for t in TABLES:
            rows = [r for r in getattr(parsed, t)
                    if self.marks[t] < int(r["step"]) and (int(r["step"]) < frontier or final)]
            if rows:
                new[t] = schema.conform(t, rows)
        for t, frame in new.items():  # each table's segment is one atomic write: a kill leaves whole steps
            self.writer.append(t, frame)
            self.marks[t] = int(frame["step"].max())
        if "reward_funcs" in parsed.meta and not self.writer.meta.get("reward_funcs"):
            self.writer.write_meta(reward_funcs=parsed.meta["reward_funcs"])
        else:
            self.writer.write_meta()  # the heartbeat: the run is being followed
        _feed(self.monitor, new.get("steps", schema.empty("steps")), new.get("evals", schema.empty("evals")))
        return sum(f.height for f in new.values())

    # --------------------------------------------------------------------------------------- loop

    def run(self) -> str:
        """Follow until the final marker, `idle` seconds without new data, or Ctrl-C; the final status."""
        self._tmp = tempfile.TemporaryDirectory(prefix="grpo-diag-watch-")
        polls, status = 0, "stale"
        try:
            while True:
                polls += 1
                if self._changed():
                    self._poll(final=False)
                    self.last_change = time.monotonic()
                if self._finished():
                    status = "finished"
                    break
                if self.opts.idle is not None and time.monotonic() - self.last_change > self.opts.idle:
                    self._say(f"no new data for {self.opts.idle:.0f} s: the writer went quiet")
                    break
                if self.opts.max_polls is not None and polls >= self.opts.max_polls:
                    break
                time.sleep(self.opts.interval)
        except KeyboardInterrupt:
            self._say("stopped")
        finally:
            self._close(status)
        return status

    def _poll(self, final: bool) -> None:
        if self.fmt == "auto":
            try:
                self.fmt = detect_format(self.source)
            except ImportFailure:
                return  # too little written to tell yet
            if self.fmt not in STREAMED:
                raise ImportFailure(f"{self.source}: format {self.fmt} cannot be followed yet; followable: "
                                    f"{', '.join(STREAMED)}")
        snap = self._snapshot()
        if snap is None:
            return
        try:
            parsed = parse_log(snap, self.fmt, **self.opts.import_options)
        except ImportFailure as e:
            self._say(f"not readable yet: {e}")
            return
        parsed.source = str(self.source)
        if self.writer is None:
            self._open(parsed)
        self.parsed = parsed
        self._commit(parsed, final)

    def _finished(self) -> bool:
        """The format's own end marker: a trainer_state.json whose global_step reached max_steps."""
        p = self.parsed
        if p is None or self.fmt != "trainer-state":
            return False
        g, m = p.meta.get("global_step"), p.meta.get("max_steps")
        return bool(g and m and g >= m)

    def _close(self, status: str) -> None:
        if self.parsed is not None and self.writer is not None:
            self._commit(self.parsed, final=True)  # the last step is whole now: nothing more is coming
        if self.monitor is not None:
            self.monitor.close()
        if self.writer is not None:
            self.writer.write_meta(status=status, finished=time.time(), pid=None)
            self._say(f"run {self.writer.path.name} marked {status}: steps up to {self.marks.get('steps')}")
        self._tmp.cleanup()

    def _say(self, text: str) -> None:
        print(f"[grpo-diag watch] {text}", file=self.out, flush=True)


def _feed(monitor: Monitor, steps: pl.DataFrame, evals: pl.DataFrame) -> None:
    """Steps and evaluations to the monitor in step order, an evaluation after the steps up to it."""
    rows = steps.sort("step").to_dicts() if steps.height else []
    by_step = evals.partition_by("step", as_dict=True) if evals.height else {}
    i = 0
    for (e,), frame in sorted(by_step.items()):
        while i < len(rows) and rows[i]["step"] <= e:
            monitor("step", rows[i])
            i += 1
        monitor("eval", {"frame": frame, "eval_set": frame["eval_set"][0], "step": e, "correct": None})
    for row in rows[i:]:
        monitor("step", row)

