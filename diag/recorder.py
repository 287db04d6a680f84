"""diag.Recorder: the one capture API any training loop calls.

    rec = Recorder("runs", "my-run", reward_funcs=["correct", "format"], group_size=8)
    rec.log_batch(step, rewards, advantages=adv, prompts=p, completions=c)   # per generation batch
    rec.log_eval(step, "heldout", correct=[...], buckets=[...])              # per held-out evaluation
    rec.close()

Statistics are computed here, at the edge, from raw rewards (diag.groups). Rows are buffered and
flushed as Parquet segments every `flush_secs`, so a crash loses at most that window. A write
failure never takes training down unless asked to (`on_write_error="raise"`).

Longer than the project's ~400 lines on purpose: buffering, per-batch assembly, sampled completions and
their images share one lock and one flush, and the crash-safety rule (a flushed step is whole) is read
in one class rather than across modules.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
import threading
import time
from collections import defaultdict
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import polars as pl

from diag import groups as G
from diag import schema
from diag.environment import reproducibility
from diag.store import RunWriter, StoreError

Listener = Callable[[str, Any], None]


def prompt_hash(text: str) -> str:
    """The key of a prompt in the groups table (and in anything that tracks prompts across visits)."""
    return hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()[:16]


IMAGE_REF = re.compile(r"<image:([0-9a-f]{16})>")
MAX_IMAGES = 2000  # thumbnails kept per run: a cap on the images folder (about 2 KB each)
THUMB = 96  # pixels, the longer side of a stored thumbnail


def image_key(img: Any) -> str:
    """A content hash of an image (a PIL image, or anything with bytes): two prompts that differ only in
    their image are two prompts, and the same image is stored once."""
    if hasattr(img, "tobytes"):
        data = f"{getattr(img, 'mode', '')}{getattr(img, 'size', '')}".encode() + img.tobytes()
    else:
        data = repr(img).encode("utf-8", "replace")
    return hashlib.sha1(data).hexdigest()[:16]


def _images_in(x: Any) -> list:
    if isinstance(x, list):
        return [b["image"] for m in x if isinstance(m, dict) and isinstance(m.get("content"), list)
                for b in m["content"] if isinstance(b, dict) and b.get("type") == "image" and b.get("image") is not None]
    return []


def _block(b: dict) -> str:
    if b.get("type") == "image" and b.get("image") is not None:
        return f"<image:{image_key(b['image'])}>"
    return b.get("text", f"<{b.get('type', 'item')}>")


def as_text(x: Any) -> str:
    """Prompts may be chat message lists (or carry images): store a readable string. An image is written
    as <image:KEY>, its content hash, so prompts are told apart by their images too."""
    if isinstance(x, str):
        return x
    if isinstance(x, list) and all(isinstance(m, dict) for m in x):
        parts = []
        for m in x:
            c = m.get("content", "")
            if isinstance(c, list):  # multimodal content blocks: keep the text, name the images by content
                c = " ".join(_block(b) for b in c if isinstance(b, dict))
            parts.append(f"{m.get('role', '?')}: {c}")
        return "\n".join(parts)
    try:
        return json.dumps(x, default=str)
    except (TypeError, ValueError):
        return str(x)


def _col(values: Iterable, n: int) -> list:
    return list(values) if values is not None else [None] * n


class Recorder:
    def __init__(
        self,
        root: str,
        name: str,
        reward_funcs: Sequence[str],
        reward_weights: Sequence[float] | None = None,
        group_size: int | None = None,
        *,
        meta: dict | None = None,
        eps: float = G.DEFAULT_EPS,
        flush_secs: float = 2.0,
        sample_groups: int = 2,
        max_completions: int = 50_000,
        on_write_error: str = "warn",
        overwrite: bool = False,
        background: bool = True,
        seed: int = 0,
        writer: RunWriter | None = None,
    ):
        if on_write_error not in ("warn", "raise"):
            raise ValueError("on_write_error must be 'warn' (keep training, keep rows buffered) or 'raise'")
        self.reward_funcs = list(reward_funcs)
        if not self.reward_funcs:
            raise ValueError("reward_funcs must name at least one reward function")
        weights = [1.0] * len(self.reward_funcs) if reward_weights is None else [float(w) for w in reward_weights]
        if len(weights) != len(self.reward_funcs):
            raise ValueError(f"{len(weights)} reward_weights for {len(self.reward_funcs)} reward_funcs")
        self.weights = np.asarray(weights, dtype=float)
        self.group_size = group_size
        self.eps = eps
        self.flush_secs = flush_secs
        self.sample_groups = sample_groups
        self.max_completions = max_completions
        self.on_write_error = on_write_error
        self._rng = np.random.default_rng(seed)
        self._buf: dict[str, list[pl.DataFrame]] = defaultdict(list)
        self._completions_kept = 0
        self._images_kept = 0
        self._gen_call = 0
        self._last_flush = time.monotonic()
        self._pending_error: StoreError | None = None
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()  # guards the buffers (held only to append or swap)
        self._io_lock = threading.Lock()  # serialises writes to the run directory
        self._write_error: str | None = None
        self.closed = False

        full_meta = {
            "reproducibility": reproducibility(),
            "reward_funcs": self.reward_funcs,
            "reward_weights": weights,
            "group_size": group_size,
            "eps": eps,
            **(meta or {}),
        }
        # `writer`: a run being resumed (grpo-diag watch after a restart) is appended to, not created
        self.writer = writer or RunWriter.create(root, name, full_meta, overwrite=overwrite)
        # A writer thread flushes every `flush_secs` (and so keeps the heartbeat fresh): the training
        # thread only appends to buffers. flush_secs=0 or background=False flushes inline instead.
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if background and flush_secs > 0:
            self._thread = threading.Thread(target=self._writer_loop, daemon=True, name="grpo-diag-writer")
            self._thread.start()

    # ------------------------------------------------------------------------------------ events

    @property
    def path(self):
        return self.writer.path

    def subscribe(self, fn: Listener) -> None:
        """fn(kind, payload) is called with ("step", row), ("scalars", dict) and
        ("eval", {"frame", "eval_set", "step", "correct"}) for each held-out evaluation."""
        self._listeners.append(fn)

    def _emit(self, kind: str, payload: Any) -> None:
        for fn in self._listeners:
            try:
                fn(kind, payload)
            except Exception as e:  # noqa: BLE001 - a listener must never break training
                print(f"[grpo-diag] listener {fn!r} failed on {kind}: {e}", file=sys.stderr)

    # ------------------------------------------------------------------------------------ capture

    def log_batch(
        self,
        step: int,
        rewards: Sequence | np.ndarray,
        *,
        group_size: int | None = None,
        group_ids: Sequence | None = None,
        advantages: Sequence[float] | np.ndarray | None = None,
        lengths: Sequence[int] | np.ndarray | None = None,
        clipped: Sequence[bool] | np.ndarray | None = None,
        passed: Sequence[bool] | np.ndarray | None = None,
        truth: Sequence[bool | None] | np.ndarray | None = None,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] | None = None,
        mode: str = schema.TRAIN,
        gen_call: int | None = None,
    ) -> dict:
        """Record one generation batch; returns its `steps` row (train mode) or group summary.

        rewards: [n x funcs] or [groups x G x funcs] raw rewards, None/NaN where a function abstained.
        passed: the reward's own pass decision (all-fail / all-pass groups); truth: the task's strict
        check on each completion, independent of the reward (None where it could not judge one): the
        reward-truth gap per step (diag.detect.truth_gap).
        """
        r = G.as_float_matrix(rewards, len(self.reward_funcs))
        if r.shape[1] != len(self.reward_funcs):
            raise ValueError(
                f"rewards have {r.shape[1]} function column(s) but the run declares {self.reward_funcs}"
            )
        n = r.shape[0]
        for label, arr in (("advantages", advantages), ("lengths", lengths), ("clipped", clipped),
                           ("passed", passed), ("truth", truth), ("prompts", prompts), ("completions", completions)):
            if arr is not None and len(arr) != n:
                raise ValueError(f"{label} has {len(arr)} entries for {n} completions")
        self._gen_call = gen_call if gen_call is not None else self._gen_call + 1
        layout = G.group_layout(n, group_size or self.group_size, group_ids)
        batch = G.Batch(
            rewards=r,
            weights=self.weights,
            group_index=layout,
            advantages=None if advantages is None else np.asarray(advantages, dtype=float),
            lengths=None if lengths is None else np.asarray(lengths, dtype=float),
            clipped=None if clipped is None else np.asarray(clipped, dtype=bool),
            passed=None if passed is None else np.asarray(passed, dtype=bool),
            truth=None if truth is None else np.array([np.nan if v is None else float(bool(v)) for v in truth]),
        )
        gs = G.group_stats(batch, self.eps)
        ng = layout.shape[0]
        first = layout[:, 0]
        prompt_text = [as_text(prompts[i]) for i in first] if prompts is not None else [None] * ng
        gframe = {
            "step": [step] * ng,
            "gen_call": [self._gen_call] * ng,
            "mode": [mode] * ng,
            "group": list(range(ng)),
            "prompt_hash": [prompt_hash(p) if p is not None else None for p in prompt_text],
            "prompt": [p[: schema.PROMPT_CHARS] if p is not None else None for p in prompt_text],
            **{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in gs.items() if v is not None},
        }
        self._buffer("groups", gframe)

        row = G.step_stats(batch, gs)
        row.update(step=step, gen_call=self._gen_call, wall_time=time.time())
        if mode == schema.TRAIN:
            self._buffer("steps", [row])
            self._emit("step", row)
        if completions is not None:
            chosen = self._sample_completions(step, mode, batch, gs, prompt_text, completions)
            if prompts is not None:
                for gi in chosen:
                    self._store_images(_images_in(prompts[first[gi]]))
        self.maybe_flush()
        return row

    def _store_images(self, images: list) -> None:
        """A thumbnail of each image of a sampled prompt, once per content (images/<key>.png), capped at
        MAX_IMAGES: the completions browser shows it beside the completion."""
        if not images:
            return
        folder = self.path / "images"
        for img in images:
            if self._images_kept >= MAX_IMAGES or not hasattr(img, "save"):
                return
            dest = folder / f"{image_key(img)}.png"
            if dest.exists():
                continue
            try:
                folder.mkdir(exist_ok=True)
                thumb = img.copy()
                thumb.thumbnail((THUMB, THUMB))
                tmp = dest.with_suffix(".tmp")
                thumb.save(tmp, format="PNG")
                tmp.replace(dest)
                self._images_kept += 1
            except Exception as e:  # noqa: BLE001 - a thumbnail must never take training down
                print(f"[grpo-diag] could not store an image thumbnail: {e}", file=sys.stderr)
                return

    def _sample_completions(self, step, mode, batch: G.Batch, gs, prompt_text, completions) -> list:
        room = self.max_completions - self._completions_kept
        if room <= 0 or self.sample_groups <= 0:
            return []
        ng = batch.group_index.shape[0]
        chosen = np.sort(self._rng.choice(ng, size=min(self.sample_groups, ng), replace=False))
        total = G.total_reward(batch.rewards, batch.weights)
        rows = []
        for gi in chosen:
            for j, i in enumerate(batch.group_index[gi]):
                if i < 0 or len(rows) >= room:
                    continue
                rows.append({
                    "step": step, "gen_call": self._gen_call, "mode": mode, "group": int(gi), "index": j,
                    "prompt": (prompt_text[gi] or "")[: schema.PROMPT_CHARS],
                    "completion": as_text(completions[i])[: schema.COMPLETION_CHARS],
                    "rewards": [None if math.isnan(v) else float(v) for v in batch.rewards[i]],
                    "reward": None if math.isnan(total[i]) else float(total[i]),
                    "advantage": None if batch.advantages is None else float(batch.advantages[i]),
                    "length": None if batch.lengths is None else int(batch.lengths[i]),
                    "passed": None if batch.passed is None else bool(batch.passed[i]),
                    "signal": str(gs["signal"][gi]),
                    "truth": None if batch.truth is None or np.isnan(batch.truth[i]) else bool(batch.truth[i] > 0.5),
                })
        self._completions_kept += len(rows)
        self._buffer("completions", rows)
        return [int(g) for g in chosen]

    def log_scalars(self, step: int, values: dict[str, Any], mode: str = schema.TRAIN) -> None:
        """The trainer's own numbers (loss, kl, entropy, grad_norm, ...); non-numbers are skipped."""
        rows = []
        for k, v in values.items():
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
                continue
            rows.append({"step": step, "mode": mode, "key": str(k), "value": float(v)})
        self._buffer("scalars", rows)
        self._emit("scalars", {"step": step, "mode": mode, **{r["key"]: r["value"] for r in rows}})
        self.maybe_flush()

    def log_eval(
        self,
        step: int,
        eval_set: str,
        correct: Sequence[bool] | Sequence[Sequence[bool]],
        *,
        buckets: Sequence[str] | None = None,
        completions: Sequence[str] | None = None,
        metric: str = "accuracy",
        mean_as_accuracy: bool = False,
    ) -> pl.DataFrame:
        """Record a held-out evaluation from per-item correctness.

        `correct` is one bool per item (greedy accuracy) or k bools per item (sampling): then mean@k
        and pass@k are recorded, and with `mean_as_accuracy` mean@k also as `metric` (for a run whose
        only evaluation is sampled, e.g. verl's validation with n > 1). Values are computed overall
        ("all") and per difficulty bucket.
        """
        now = time.time()
        items = [list(c) if isinstance(c, (list, tuple, np.ndarray)) else [c] for c in correct]
        n = len(items)
        buckets = list(buckets) if buckets is not None else ["all"] * n
        if len(buckets) != n:
            raise ValueError(f"buckets has {len(buckets)} entries for {n} evaluation items")
        k = max((len(c) for c in items), default=1)
        first = np.array([bool(c[0]) if c else False for c in items])
        mean_k = np.array([np.mean(c) if c else 0.0 for c in items])
        any_k = np.array([bool(np.any(c)) for c in items])
        metrics = {metric: first} if k == 1 else {f"mean@{k}": mean_k, f"pass@{k}": any_k}
        if k > 1 and mean_as_accuracy:
            metrics = {metric: mean_k, **metrics}
        rows = []
        groups = {"all": np.ones(n, dtype=bool)}
        for b in sorted(set(buckets) - {"all"}):
            groups[b] = np.array([x == b for x in buckets])
        for mname, vals in metrics.items():
            for b, mask in groups.items():
                cnt = int(mask.sum())
                rows.append({
                    "step": step, "eval_set": eval_set, "metric": mname, "bucket": b,
                    "value": float(vals[mask].mean()) if cnt else None, "n": cnt, "wall_time": now,
                })
        frame = schema.conform("evals", rows)
        self._buffer("evals", frame)
        self._buffer("eval_items", [
            {"step": step, "eval_set": eval_set, "item": i, "bucket": buckets[i], "correct": bool(first[i]),
             "completion": None if completions is None else as_text(completions[i])[: schema.COMPLETION_CHARS]}
            for i in range(n)
        ])
        self._emit("eval", {"frame": frame, "eval_set": eval_set, "step": step, "correct": first})
        self.maybe_flush()
        return frame

    def log_eval_value(self, step: int, eval_set: str, value: float, n: int | None = None,
                       metric: str = "accuracy") -> None:
        """An evaluation known only as a number (a foreign trainer's logged validation metric)."""
        frame = schema.conform("evals", [{"step": step, "eval_set": eval_set, "metric": metric, "bucket": "all",
                                          "value": value, "n": n, "wall_time": time.time()}])
        self._buffer("evals", frame)
        self._emit("eval", {"frame": frame, "eval_set": eval_set, "step": step, "correct": None})
        self.maybe_flush()

    def log_alert(self, row: dict) -> None:
        self._buffer("alerts", [{"wall_time": time.time(), **row}])
        self.flush()

    # ------------------------------------------------------------------------------------ I/O

    def _buffer(self, table: str, rows: list[dict] | dict[str, list] | pl.DataFrame) -> None:
        """Keep raw rows (a list of row dicts, or a dict of columns); frames are built at flush, once
        per table, because building a polars frame per batch would cost more than the statistics."""
        with self._lock:
            self._buf[table].append(rows)

    @staticmethod
    def _frame(table: str, chunks: list) -> pl.DataFrame:
        """One conformed frame from buffered chunks: column dicts are merged, row lists joined."""
        frames = [schema.conform(table, c) for c in chunks if isinstance(c, pl.DataFrame)]
        col_chunks = [c for c in chunks if isinstance(c, dict) and c]
        if col_chunks:
            keys = list(dict.fromkeys(k for c in col_chunks for k in c))
            cols: dict[str, list] = {k: [] for k in keys}
            for c in col_chunks:
                n = len(next(iter(c.values())))
                for k in keys:
                    cols[k].extend(c.get(k, [None] * n))
            dtypes = {k: v for k, v in schema.TABLES[table].items() if k in cols}
            frames.append(schema.conform(table, pl.DataFrame(cols, schema_overrides=dtypes, strict=False)))
        rows = [r for c in chunks if isinstance(c, list) for r in c]
        if rows:
            frames.append(schema.conform(table, rows))
        if not frames:
            return schema.empty(table)
        return pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]

    def maybe_flush(self) -> None:
        """Called by the training thread after each record: surfaces a writer failure in 'raise'
        mode, and flushes inline when there is no writer thread."""
        if self._pending_error is not None:
            err, self._pending_error = self._pending_error, None
            raise err
        if self._thread is None and time.monotonic() - self._last_flush >= self.flush_secs:
            self.flush()

    def flush(self) -> None:
        """Write buffered rows, one segment per table. On failure rows stay buffered for a retry."""
        with self._io_lock:
            with self._lock:  # swap the buffers out; the training thread keeps appending meanwhile
                pending, self._buf = self._buf, defaultdict(list)
                self._last_flush = time.monotonic()
            try:
                while pending:
                    table = next(iter(pending))
                    chunks = pending[table]
                    if chunks:
                        df = self._frame(table, chunks)
                        pending[table] = [df]  # converted once, even if the write below fails
                        self.writer.append(table, df)
                    del pending[table]
                self.writer.write_meta()  # doubles as the heartbeat
                self._write_error = None
            except StoreError as e:
                with self._lock:  # put unwritten rows back in front of what arrived meanwhile
                    for table, chunks in pending.items():
                        self._buf[table][:0] = chunks
                if self.on_write_error == "raise":
                    if threading.current_thread() is self._thread:
                        self._pending_error = e
                        return
                    raise
                if self._write_error != str(e):  # say it once, not every flush
                    print(f"[grpo-diag] {e}", file=sys.stderr)
                self._write_error = str(e)

    def _writer_loop(self) -> None:
        while not self._stop.wait(self.flush_secs):
            try:
                self.flush()
            except Exception as e:  # noqa: BLE001 - the writer thread must outlive any one failure
                print(f"[grpo-diag] writer: {type(e).__name__}: {e}", file=sys.stderr)

    def update_meta(self, **updates: Any) -> None:
        with self._io_lock:
            self.writer.write_meta(**updates)

    def close(self, status: str = "finished", error: str | None = None, compact: bool = True) -> None:
        if self.closed:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self.flush()
        if compact and not self._write_error:
            for table in schema.TABLES:
                try:
                    self.writer.compact(table)
                except OSError:
                    pass  # compaction is an optimisation; the segments stay readable as they are
        extra = {"error": error} if error else {}
        with self._io_lock:
            try:
                self.writer.write_meta(status=status, finished=time.time(), **extra)
            except StoreError as e:
                print(f"[grpo-diag] {e}", file=sys.stderr)
        self.closed = True

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close("finished")
        else:
            self.close("crashed", error=f"{exc_type.__name__}: {exc}")

