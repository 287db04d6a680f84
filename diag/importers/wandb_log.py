"""W&B runs: a run folder's `.wandb` transaction log, read record by record, or a synced run through the API.

The `.wandb` file (online and offline runs alike) is a 7-byte header (`:W&B`, two magic bytes, a version
byte) and then LevelDB's log format: 32 KiB blocks of records, each with a 7-byte header (CRC uint32,
length uint16, type uint8: 1 full, 2 first, 3 middle, 4 last of a record split across blocks; a block's
tail under 7 bytes is padding). W&B seeds the CRC with the type byte: `crc32(data, crc32(bytes([type])))`.
Every record is a `wandb.proto.wandb_internal_pb2.Record` (wandb's own classes: wandb 0.31 has no Python
reader of the file any more, its reading moved to the Go core). History rows carry `_step` and the logged
keys, config records the run's settings, summary records the last values.

A run still being written ends in a torn record: reading stops there and says how many records it read.
A damaged record (CRC mismatch, or bytes that are not a Record) is named with its byte offset; reading
resumes at the next block, as LevelDB does, so one bad block loses only what it held.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from diag.importers.base import ImportFailure
from diag.importers.logged import Logged, need

MAGIC = b":W&B"
FILE_HEADER = 7
BLOCK = 32768
REC_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


@dataclass
class Scan:
    """The records of one file, and what reading it found."""
    records: list[bytes] = field(default_factory=list)
    torn_at: int | None = None  # byte offset of an incomplete last record (a run still being written)
    damage: list[str] = field(default_factory=list)  # "byte N: why", one per damaged block


def scan(data: bytes, source: str = "") -> Scan:
    """Split a `.wandb` file's bytes into its records, checking every CRC."""
    if len(data) < FILE_HEADER or data[:4] != MAGIC:
        raise ImportFailure(f"{source}: not a W&B transaction log (it does not start with ':W&B'); expected the "
                            "run-<id>.wandb file of a wandb/run-* folder")
    out, pos, parts, parts_at = Scan(), FILE_HEADER, None, 0
    while pos < len(data):
        left = BLOCK - pos % BLOCK
        if left < REC_HEADER:  # padding at a block's end
            pos += left
            continue
        if pos + REC_HEADER > len(data):
            out.torn_at = pos
            break
        crc, length, kind = struct.unpack_from("<IHB", data, pos)
        if crc == 0 and length == 0 and kind == 0 and not data[pos:].strip(b"\0"):
            break  # zeros to the end: space written ahead, nothing logged in it yet
        end = pos + REC_HEADER + length
        if end > len(data):
            out.torn_at = pos
            break
        payload = data[pos + REC_HEADER:end]
        if kind not in (FULL, FIRST, MIDDLE, LAST) or end > pos + left or \
                zlib.crc32(payload, zlib.crc32(bytes([kind]))) != crc:
            if not data[end:].strip(b"\0"):  # the last record, half written into space zeroed ahead
                out.torn_at = pos
                break
            why = "checksum mismatch" if kind in (FULL, FIRST, MIDDLE, LAST) else f"record type {kind}"
            out.damage.append(f"byte {pos}: {why}")
            pos, parts = pos + left, None  # resume at the next block
            continue
        pos = end
        if kind == FULL:
            out.records.append(payload)
        elif kind == FIRST:
            parts, parts_at = [payload], pos - REC_HEADER - length
        elif parts is not None:  # a middle or last part whose first part was lost is dropped
            parts.append(payload)
            if kind == LAST:
                out.records.append(b"".join(parts))
                parts = None
    if parts is not None and out.torn_at is None:  # a record split across blocks whose last part is not written
        out.torn_at = parts_at
    return out


def run_file(path: Path) -> Path:
    """The `.wandb` file of a run folder (`wandb/run-*`, `offline-run-*`, `latest-run`), of a `wandb/` folder
    holding one run, or the file itself."""
    if path.is_file():
        return path
    files = sorted(path.glob("*.wandb"))
    if len(files) == 1:
        return files[0]
    runs = sorted(p for p in path.glob("*run-*") if p.is_dir() and any(p.glob("*.wandb")))
    if len(runs) == 1:
        return run_file(runs[0])
    if not runs:
        raise ImportFailure(f"{path}: no run-<id>.wandb file here; point at a wandb/run-* folder")
    raise ImportFailure(f"{path}: {len(runs)} W&B runs here; pick one folder: " +
                        ", ".join(r.name for r in runs[-12:]))


def sniff(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".wandb"
    try:
        run_file(path)
        return True
    except ImportFailure as e:
        return "W&B runs here" in str(e)


def _value(item) -> object:
    if item.value_json:
        try:
            return json.loads(item.value_json)
        except json.JSONDecodeError:
            return None
    which = item.WhichOneof("value")
    return None if which in (None, "none", "json", "text") else getattr(item, which)


def _key(item) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


def _unwrap(v):
    """Config values arrive as {"value": x, "desc": ...} in some versions."""
    return v["value"] if isinstance(v, dict) and "value" in v and set(v) <= {"value", "desc"} else v


def read(path: str | Path) -> Logged:
    """Every history row of a W&B run folder or `.wandb` file, its config and summary."""
    pb = need("wandb", "W&B run folders").proto.wandb_internal_pb2
    f = run_file(Path(path))
    sc = scan(f.read_bytes(), str(f))
    logged = Logged(source=str(path), fmt="wandb")
    run_step = None
    for i, raw in enumerate(sc.records):
        rec = pb.Record()
        try:
            rec.ParseFromString(raw)
        except Exception:  # noqa: BLE001 - protobuf's DecodeError; a record that is not one is damage
            sc.damage.append(f"record {i}: not a W&B record")
            continue
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            row = {_key(it): _value(it) for it in rec.history.item}
            step = row.get("_step", rec.history.step.num if rec.history.HasField("step") else None)
            if step is None:
                step = (run_step or -1) + 1
            run_step = int(step)
            logged.rows.append((run_step, row))
        elif kind == "config":
            for it in rec.config.update:
                logged.config[_key(it)] = _unwrap(_value(it))
        elif kind == "summary":
            for it in rec.summary.update:
                logged.summary[_key(it)] = _value(it)
        elif kind == "run":
            r = rec.run
            logged.meta.update({k: v for k, v in (("run_id", r.run_id), ("project", r.project),
                                                  ("entity", r.entity), ("name", r.display_name)) if v})
            for it in r.config.update:
                logged.config.setdefault(_key(it), _unwrap(_value(it)))
        elif kind in ("exit", "final", "footer"):
            logged.closed = True
    logged.config.pop("_wandb", None)
    logged.notes.append(f"{f.name}: {len(sc.records)} records read, {len(logged.rows)} history rows" +
                        ("" if logged.closed else "; the run was not closed (no exit record): still running, "
                                                  "or stopped without wandb.finish()"))
    if sc.torn_at is not None:
        logged.notes.append(f"{f.name}: the last record is incomplete at byte {sc.torn_at} (a run still being "
                            "written); the records before it were read")
    for d in sc.damage:
        logged.notes.append(f"{f.name}: damaged at {d}; the records before it were read, reading went on at "
                            "the next block")
    return logged


def read_api(uri: str) -> Logged:
    """A synced run, `wandb://ENTITY/PROJECT/RUN_ID`, through W&B's public API (needs the network and a login:
    `wandb login`). Only the download is here; what follows is the same as for a run folder."""
    parts = uri[len("wandb://"):].strip("/").split("/")
    if len(parts) != 3 or not all(parts):
        raise ImportFailure(f"{uri}: expected wandb://ENTITY/PROJECT/RUN_ID")
    wandb = need("wandb", "W&B runs")
    try:
        run = wandb.Api().run("/".join(parts))
        history = list(run.scan_history())
    except Exception as e:  # noqa: BLE001 - the API raises many kinds (network, auth, not found)
        raise ImportFailure(f"{uri}: W&B's API could not fetch the run ({type(e).__name__}: {e}); check the path "
                            "and `wandb login`, or import the run's local wandb/run-* folder") from e
    return from_history(history, dict(run.config), dict(run.summary), uri,
                        {"run_id": parts[2], "project": parts[1], "entity": parts[0], "name": run.name})


def from_history(history: list[dict], config: dict, summary: dict, source: str, meta: dict | None = None) -> Logged:
    """W&B API rows (`scan_history()`: dicts with `_step`) -> Logged; a saved history is tested with this."""
    logged = Logged(source=source, fmt="wandb", config={k: _unwrap(v) for k, v in config.items()
                                                        if k != "_wandb"}, summary=summary, meta=meta or {})
    for i, row in enumerate(history):
        logged.rows.append((int(row.get("_step", i)), dict(row)))
    logged.closed = True
    logged.notes.append(f"{source}: {len(logged.rows)} history rows from W&B's API")
    return logged
