"""verl console output: `step:N - key:value - key:value ...`, with Ray prefixes such as
`(main_task pid=...)`, ANSI colour codes and `np.float64(...)` wrappers around numbers.
Validation arrives as `val/test_score/<source>` (older) or `val-core/<source>/reward/mean@1` (newer),
on the training line of that step or on a line of its own. The metric names are verl's own, the same
as its `file` logger writes (see verl_files.py); both go through `from_metrics`."""

from __future__ import annotations

import re
from pathlib import Path

from diag.importers.base import ImportFailure, Parsed, finite
from diag.importers.mapping import VERL_STEP_KEYS, pick_accuracy_key, verl_eval_keys

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
LINE = re.compile(r"\bstep:(\d+) - (.*)$")
WRAP = re.compile(r"^np\.(?:float|int)\d*\((.*)\)$")


def sniff(head: str) -> bool:
    return bool(re.search(r"\bstep:\d+ - [\w/@.-]+:", ANSI.sub("", head)))


def _value(v: str):
    v = v.strip()
    m = WRAP.match(v)
    if m:
        v = m.group(1)
    return finite(v)


def parse(path: Path, accuracy_key: str | None = None) -> Parsed:
    text = path.read_bytes().decode("utf-8", errors="replace")
    by_step: dict[int, dict] = {}
    for line in text.splitlines():
        m = LINE.search(ANSI.sub("", line))
        if not m:
            continue
        row = by_step.setdefault(int(m.group(1)), {})
        for part in m.group(2).split(" - "):
            key, sep, val = part.rpartition(":")
            if sep and key:
                row[key.strip()] = _value(val)
    if not by_step:
        raise ImportFailure(f"{path}: no verl metric lines found (expected 'step:N - key:value - ...')")
    return from_metrics(by_step, str(path), "verl-console", accuracy_key)


def from_metrics(by_step: dict[int, dict], source: str, fmt: str, accuracy_key: str | None = None,
                 with_steps: bool = True) -> Parsed:
    """verl's per-step metric dicts -> steps (batch means), every number as a scalar, and one eval
    set per validation data source (`val-core/<source>/<acc|reward>/mean@N`)."""
    p = Parsed(source=source, format=fmt, meta={"framework": "verl", "reward_funcs": ["score"],
                                                "reward_weights": [1.0]})
    keys = {k for r in by_step.values() for k in r}
    p.fields |= keys
    sets = verl_eval_keys(keys)
    if accuracy_key or not sets:
        acc_key, eval_set = pick_accuracy_key(keys, accuracy_key, source)
        if acc_key:
            sets = {eval_set: acc_key, **{s: k for s, k in sets.items() if k != acc_key}}
    if sets:
        first = next(iter(sets.values()))
        p.meta["accuracy_key"] = first
        p.meta["eval_keys"] = sets
        p.notes.append("held-out accuracy per validation data source: " +
                       ", ".join(f"{s} from {k!r}" for s, k in sets.items()) +
                       ("" if accuracy_key else " (recognised)"))
    else:
        p.notes.append("no validation metric in the log: decoupling cannot be judged")
    p.meta["column_sources"] = {c: k[0] for c, k in VERL_STEP_KEYS.items() if k[0] in keys}
    if with_steps:
        p.notes.append("verl's metrics hold batch means, no per-group rewards: zero-signal shares are not "
                       "available (import trainer.rollout_data_dir for them)")
    for step in sorted(by_step):
        r = by_step[step]
        for k, v in r.items():
            if v is not None:
                p.scalars.append({"step": step, "mode": "train", "key": k, "value": v})
        for eval_set, key in sets.items():
            if r.get(key) is not None:
                p.evals.append({"step": step, "eval_set": eval_set, "metric": "accuracy", "bucket": "all",
                                "value": r[key], "n": None})
        if with_steps and r.get("critic/score/mean") is not None:
            row = {"step": step, **{c: r.get(k[0]) for c, k in VERL_STEP_KEYS.items()}}
            row["func_mean"] = [r.get("critic/score/mean")]
            p.steps.append(row)
    return p
