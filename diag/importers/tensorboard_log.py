"""TensorBoard log folders: event files at any depth, read with TensorBoard's own event accumulator.

A folder of event files is one run (TRL writes `<output_dir>/runs/<date>_<host>/`, verl
`tensorboard_log/<project>/<experiment>/`); a folder holding several such runs needs `--run` with the run's
folder relative to it. Scalars (`add_scalar`) and scalar tensors (TF2 summaries) are read; the event
reader stops at a half-written last record, so a folder being written reads as far as it is complete.

Two readers, both TensorBoard's own: its data server (the Rust reader shipped as `tensorboard-data-server`,
the one `tensorboard --load_fast` uses), which reads a 100k-step run in seconds, and the Python event
accumulator, whose pure-Python record checksums take minutes on one; the server is used when it starts,
the accumulator otherwise, and config (transformers' `args` text) always comes from the accumulator's view.
"""

from __future__ import annotations

import json
from pathlib import Path

from diag.importers.base import ImportFailure, finite
from diag.importers.logged import Logged, need, pick_run

PATTERN = "events.out.tfevents.*"


def run_dirs(path: Path) -> list[Path]:
    """The folders holding event files, at any depth below `path` (itself included)."""
    return sorted({f.parent for f in path.rglob(PATTERN) if f.is_file()})


def sniff(path: Path) -> bool:
    return path.is_dir() and next(path.rglob(PATTERN), None) is not None or path.name.startswith("events.out.tfevents")


def choose(path: Path, run: str | None) -> Path:
    """The run folder: `path` itself when it holds the events, else the one named by `run` (its folder relative
    to `path`, or its last part)."""
    if path.is_file():
        return path.parent
    runs = run_dirs(path)
    if not runs and run is None:
        raise ImportFailure(f"{path}: no TensorBoard event files (events.out.tfevents.*) at any depth")
    names = [(str(r.relative_to(path)), r.name) for r in runs]
    return runs[pick_run(str(path), "TensorBoard", names, run)]


def read(path: str | Path, run: str | None = None) -> Logged:
    ea = need("tensorboard.backend.event_processing.event_accumulator", "TensorBoard logs")
    folder = choose(Path(path), run)
    served = _served(folder)
    if served is not None:
        by_step, config = served
        return _logged(path, folder, by_step, config, " (TensorBoard's data server)")
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
    return _logged(path, folder, by_step, config, "")


def _logged(path, folder: Path, by_step: dict[int, dict], config: dict, how: str) -> Logged:
    logged = Logged(source=str(path), fmt="tensorboard", rows=sorted(by_step.items()), config=config,
                    meta={"name": str(folder.relative_to(Path(path))) if Path(path).is_dir() else folder.name})
    logged.notes.append(f"{folder}: {len(by_step)} steps of {len({k for r in by_step.values() for k in r})} scalar "
                        f"tags{how}")
    return logged


def _json(raw) -> dict:
    try:
        v = json.loads(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw))
    except (json.JSONDecodeError, ValueError):
        return {}
    return v if isinstance(v, dict) else {}


def _served(folder: Path) -> tuple[dict[int, dict], dict] | None:
    """({step: {tag: value}}, config) of the folder's own event files through TensorBoard's data server, or
    None when it cannot start (no binary for this platform, no free port): then the accumulator reads them."""
    import time

    try:
        from tensorboard import context
        from tensorboard.data import provider, server_ingester
        from tensorboard.util import grpc_util

        ing = server_ingester.SubprocessServerDataIngester(
            server_ingester.get_server_binary(), str(folder), reload_interval=0,  # 0: load once, then serve
            channel_creds_type=grpc_util.ChannelCredsType.LOCAL, samples_per_plugin={"scalars": 0})  # 0: every point
        ing.start()
    except Exception:  # noqa: BLE001 - any failure to start: fall back to the accumulator
        return None
    try:
        dp, ctx, seen, start = ing.data_provider, context.RequestContext(), [], time.monotonic()
        while True:  # the server loads in the background: read once its listing has held still for half a second
            listing = dp.list_scalars(ctx, experiment_id="", plugin_name="scalars")
            seen.append(sorted((r, t, m.max_step, m.max_wall_time) for r, tags in listing.items()
                               for t, m in tags.items()))
            if len(seen) >= 3 and all(v == seen[-1] for v in seen[-3:]) and (seen[-1] or time.monotonic() - start > 10):
                break
            time.sleep(0.25)
        if not seen[-1]:
            return None  # nothing the server could serve: the accumulator says why
        data = dp.read_scalars(ctx, experiment_id="", plugin_name="scalars", downsample=2**31 - 1)
        texts = dp.read_tensors(ctx, experiment_id="", plugin_name="text", downsample=1,
                                run_tag_filter=provider.RunTagFilter(runs=["."], tags=["args/text_summary"]))
    except Exception:  # noqa: BLE001 - a server that stops answering: the accumulator reads it instead
        return None
    finally:
        ing._stdin_handle.close()  # the server runs with --die-after-stdin: closing its stdin ends it
    by_step: dict[int, dict] = {}
    for tag, points in data.get(".", {}).items():  # "." is the folder itself; sub-folders are other runs
        for pt in points:
            by_step.setdefault(int(pt.step), {})[tag] = pt.value
    args = texts.get(".", {}).get("args/text_summary") or []
    config = _json(args[-1].numpy.reshape(-1)[0]) if args and args[-1].numpy.size == 1 else {}
    return by_step, config
