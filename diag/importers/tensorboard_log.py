"""TensorBoard log folders: event files at any depth, read with TensorBoard's own event accumulator.

A folder of event files is one run (TRL writes `<output_dir>/runs/<date>_<host>/`, verl
`tensorboard_log/<project>/<experiment>/`); a folder holding several such runs needs `--run` with the run's
folder relative to it. Scalars (`add_scalar`) and scalar tensors (TF2 summaries) are read; the event
reader stops at a half-written last record, so a folder being written reads as far as it is complete.
"""

from __future__ import annotations

import json
from pathlib import Path

from diag.importers.base import ImportFailure, finite
from diag.importers.logged import Logged, need

PATTERN = "events.out.tfevents.*"


def run_dirs(path: Path) -> list[Path]:
    """The folders holding event files, at any depth below `path` (itself included)."""
    return sorted({f.parent for f in path.rglob(PATTERN) if f.is_file()})


def sniff(path: Path) -> bool:
    return path.is_dir() and next(path.rglob(PATTERN), None) is not None or path.name.startswith("events.out.tfevents")


def choose(path: Path, run: str | None) -> Path:
    if path.is_file():
        return path.parent
    runs = run_dirs(path)
    names = [str(r.relative_to(path)) for r in runs]
    if run is not None:
        if run in names:
            return path / run
        hits = [r for r, n in zip(runs, names) if r.name == run]
        if len(hits) == 1:
            return hits[0]
        raise ImportFailure(f"{path}: no TensorBoard run {run!r} here; runs: {', '.join(names[:20])}")
    if not runs:
        raise ImportFailure(f"{path}: no TensorBoard event files (events.out.tfevents.*) at any depth")
    if len(runs) > 1:
        raise ImportFailure(f"{path}: {len(runs)} TensorBoard runs here; pick one with --run NAME: "
                            f"{', '.join(names[:20])}")
    return runs[0]


def read(path: str | Path, run: str | None = None) -> Logged:
    ea = need("tensorboard.backend.event_processing.event_accumulator", "TensorBoard logs")
    folder = choose(Path(path), run)
    acc = ea.EventAccumulator(str(folder), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    try:
        acc.Reload()
    except Exception as e:  # noqa: BLE001 - a damaged event file: the reader's own error, named
        raise ImportFailure(f"{folder}: TensorBoard could not read the event files ({type(e).__name__}: {e})") from e
    by_step: dict[int, dict] = {}
    config: dict = {}
    tags = acc.Tags()
    for tag in tags.get("scalars", []):
        for ev in acc.Scalars(tag):
            by_step.setdefault(int(ev.step), {})[tag] = ev.value
    if tags.get("tensors"):
        from tensorboard.util import tensor_util

        for tag in tags["tensors"]:
            for ev in acc.Tensors(tag):
                arr = tensor_util.make_ndarray(ev.tensor_proto)
                if arr.ndim == 0 and arr.dtype.kind in "fiu" and finite(arr.item()) is not None:
                    by_step.setdefault(int(ev.step), {}).setdefault(tag, float(arr.item()))
                elif tag == "args/text_summary" and arr.size == 1:  # transformers writes its TrainingArguments
                    config = _json(arr.reshape(-1)[0])
    logged = Logged(source=str(path), fmt="tensorboard", rows=sorted(by_step.items()), config=config,
                    meta={"name": str(folder.relative_to(Path(path))) if Path(path).is_dir() else folder.name})
    logged.notes.append(f"{folder}: {len(by_step)} steps of {len(tags.get('scalars', []))} scalar tags")
    return logged


def _json(raw) -> dict:
    try:
        v = json.loads(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw))
    except (json.JSONDecodeError, ValueError):
        return {}
    return v if isinstance(v, dict) else {}
