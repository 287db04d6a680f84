"""Hugging Face `trainer_state.json`: per-step dicts in `log_history`; eval rows have `eval_*` keys."""

from __future__ import annotations

import json
from pathlib import Path

from diag.importers.base import ImportFailure, Parsed
from diag.importers.trl_logs import parse_trl_rows


def sniff(head: str) -> bool:
    return '"log_history"' in head


def parse(path: Path, accuracy_key: str | None = None) -> Parsed:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ImportFailure(f"{path}: not UTF-8 text (byte {e.start}); a trainer_state.json is JSON") from e
    try:
        state = json.loads(text)
    except json.JSONDecodeError as e:
        raise ImportFailure(f"{path}: invalid JSON at line {e.lineno}, column {e.colno} ({e.msg}); the file may "
                            "be truncated: copy it again from the checkpoint folder") from e
    if not isinstance(state, dict) or "log_history" not in state:
        raise ImportFailure(f"{path}: key 'log_history' missing; expected a Hugging Face trainer_state.json "
                            "(use --format trl-console or verl-console for console output)")
    hist = state["log_history"]
    if not isinstance(hist, list):
        raise ImportFailure(f"{path}: 'log_history' must be a list of dicts, got {type(hist).__name__}")
    rows = []
    for i, r in enumerate(hist):
        if not isinstance(r, dict) or "step" not in r:
            raise ImportFailure(f"{path}: log_history[{i}] must be a dict with a 'step' key, got {str(r)[:80]!r}")
        try:
            step = int(r["step"])
        except (TypeError, ValueError, OverflowError) as e:
            raise ImportFailure(f"{path}: log_history[{i}]['step'] = {r['step']!r} is not an integer") from e
        rows.append((step, r))
    if not rows:
        raise ImportFailure(f"{path}: 'log_history' is empty: no logged steps to import")
    p = Parsed(source=str(path), format="trainer-state")
    for k in ("global_step", "max_steps", "logging_steps", "eval_steps", "num_train_epochs", "train_batch_size"):
        if isinstance(state.get(k), (int, float)):
            p.meta[k] = state[k]
    return parse_trl_rows(rows, p, accuracy_key)
