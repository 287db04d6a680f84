"""verl's own files, at full fidelity.

- Rollout dumps (`trainer.rollout_data_dir=DIR`): one `{step}.jsonl` per step, a line per completion
  with `input`, `output`, `gts`, `score`, `step` and extra fields. verl 0.9's two trainers differ:
  the legacy trainer keeps the reward function's extra keys (e.g. `acc`, `pred`) but no `uid`, and its
  lines come in `_balance_batch` order (a group's rollouts are scattered), so groups are rebuilt from
  identical prompts; the new default trainer adds `uid` = `{prompt uid}_{session}_{output}` and drops
  the extra keys, so groups are the uid's prompt part (and a multi-output session counts once, by its
  final output, which carries the session's reward). Groups then go through the same per-group
  statistics as a live TRL run: signal classes, the signal-gap detector, the report.
- Validation dumps (`trainer.validation_data_dir=DIR`): the same lines for validation samples; items
  are rebuilt the same way and scored per item (mean@n when verl samples n > 1).
- The `file` logger (`trainer.logger=[...,"file"]`, `VERL_FILE_LOGGER_PATH`): one
  `{"step": N, "data": {metric: value}}` line per step, every metric verl computed, no console parsing;
  `val-core/<data_source>/<metric>/mean@N` becomes one eval set per data source.

"Passes the verifier" is the `acc` field where verl's reward gives one, else `score >= 0.5`
(`--pass-threshold` to change): right for 0/1 and +-1 rule rewards.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from diag.importers.base import ImportFailure, Parsed, finite, jsonl_lines, staged_run
from diag.importers.verl_console import from_metrics
from diag.recorder import Recorder

DUMP_KEYS = ("input", "output", "score")
DUMP_HINT = ("verl dumps hold one JSON object per line with input, output, gts, score and step "
             "(trainer.rollout_data_dir / trainer.validation_data_dir)")
FILE_HINT = 'verl\'s file logger writes one {"step": N, "data": {...}} object per line'
DEFAULT_PASS = 0.5


# ----------------------------------------------------------------------------- recognising them

def dump_files(path: Path) -> list[Path]:
    """`{step}.jsonl` files of a dump directory, by step."""
    if not path.is_dir():
        return []
    return sorted((f for f in path.glob("*.jsonl") if f.stem.isdigit()), key=lambda f: int(f.stem))


def sniff_dump_dir(path: Path) -> bool:
    files = dump_files(path)
    if not files:
        return False
    with files[0].open(encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    try:
        row = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(row, dict) and all(k in row for k in DUMP_KEYS)


def sniff_file_logger(head: str) -> bool:
    line = next((ln for ln in head.splitlines() if ln.strip()), "")
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return False
    return isinstance(row, dict) and set(row) == {"step", "data"} and isinstance(row["data"], dict)


# ----------------------------------------------------------------------------- the file logger

def read_file_logger(path: Path) -> dict[int, dict]:
    """step -> {metric: number}; a step logged on several lines (validation, then training) merges."""
    by_step: dict[int, dict] = {}
    for i, row in jsonl_lines(path, FILE_HINT):
        if not isinstance(row, dict) or "step" not in row or not isinstance(row.get("data"), dict):
            raise ImportFailure(f"{path}: line {i} is not a {{\"step\": N, \"data\": {{...}}}} object; {FILE_HINT}")
        try:
            step = int(row["step"])
        except (TypeError, ValueError) as e:
            raise ImportFailure(f"{path}: line {i} has step {row['step']!r}, not an integer; {FILE_HINT}") from e
        merged = by_step.setdefault(step, {})
        for k, v in row["data"].items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue  # verl logs numbers; anything else (tables, strings) is not a metric
            merged[str(k)] = finite(v)
    if not by_step:
        raise ImportFailure(f"{path}: no metric lines; {FILE_HINT}")
    return by_step


def parse_file_logger(path: Path, accuracy_key: str | None = None) -> Parsed:
    return from_metrics(read_file_logger(path), str(path), "verl-file", accuracy_key)


# ----------------------------------------------------------------------------- the dumps

def read_dump(f: Path) -> list[dict]:
    rows = []
    for i, row in jsonl_lines(f, DUMP_HINT):
        if not isinstance(row, dict):
            raise ImportFailure(f"{f}: line {i} is not a JSON object; {DUMP_HINT}")
        missing = [k for k in DUMP_KEYS if k not in row]
        if missing:
            raise ImportFailure(f"{f}: line {i} lacks {missing}; {DUMP_HINT}")
        if finite(row["score"]) is None:
            raise ImportFailure(f"{f}: line {i} has score {row['score']!r}, not a number; {DUMP_HINT}")
        rows.append(row)
    return rows


def _split_uid(uid: str) -> tuple[str, str, int]:
    parts = str(uid).rsplit("_", 2)
    if len(parts) == 3 and parts[1].lstrip("-").isdigit() and parts[2].isdigit():
        return parts[0], parts[1], int(parts[2])
    return str(uid), "0", 0


def groups_of(rows: list[dict]) -> tuple[list[dict], list[str], str]:
    """(rows kept, group id per row, how): by the uid's prompt part (new trainer; one row per session,
    its final output), else by identical prompt text (legacy trainer)."""
    if rows and all("uid" in r for r in rows):
        final: dict[tuple[str, str], tuple[int, dict]] = {}
        for r in rows:
            prompt, session, index = _split_uid(r["uid"])
            if (prompt, session) not in final or index >= final[(prompt, session)][0]:
                final[(prompt, session)] = (index, r)
        kept = [r for _, r in final.values()]
        return kept, [_split_uid(r["uid"])[0] for r in kept], "uid"
    return rows, [str(r["input"]) for r in rows], "prompt"


def group_size(id_lists: list[list[str]]) -> tuple[int, Counter]:
    """(the most common group size, every size seen with its count) over the group ids of some dumps."""
    sizes = Counter(n for ids in id_lists for n in Counter(ids).values())
    return sizes.most_common(1)[0][0], sizes


def pass_rule(rows: list[dict], threshold: float | None) -> str | float:
    """"acc" when every line carries verl's `acc` and no threshold was given, else the score threshold."""
    if threshold is None and rows and all("acc" in r for r in rows):
        return "acc"
    return DEFAULT_PASS if threshold is None else threshold


def _passed(rows: list[dict], rule: str | float) -> np.ndarray:
    if rule == "acc":
        return np.array([bool(r["acc"]) for r in rows])
    return np.array([float(r["score"]) >= rule for r in rows])


def _describe(rule: str | float) -> str:
    return "`acc` (verl's reward extra field)" if rule == "acc" else f"score >= {rule}"


def import_dumps(path: Path, root: str, name: str, overwrite: bool = False, validation: str | None = None,
                 metrics: str | None = None, accuracy_key: str | None = None,
                 pass_threshold: float | None = None) -> tuple[Path, list[str]]:
    path = Path(path)
    files = dump_files(path)
    if not files:
        raise ImportFailure(f"{path}: no {{step}}.jsonl files; point at verl's trainer.rollout_data_dir")
    train = {int(f.stem): read_dump(f) for f in files}
    val_dir = Path(validation) if validation else None
    if val_dir is not None and not dump_files(val_dir):
        raise ImportFailure(f"{val_dir}: no {{step}}.jsonl files; point --validation-dir at verl's "
                            "trainer.validation_data_dir")
    val = {int(f.stem): read_dump(f) for f in dump_files(val_dir)} if val_dir else {}
    logged = parse_file_logger(Path(metrics), accuracy_key) if metrics else None

    all_rows = [r for rows in train.values() for r in rows]
    grouped = {step: groups_of(rows) for step, rows in train.items()}
    how = "uid" if all(g[2] == "uid" for g in grouped.values()) else "prompt"
    G, sizes = group_size([ids for _, ids, _ in grouped.values()])
    rule = pass_rule(all_rows, pass_threshold)
    val_rule = pass_rule([r for rows in val.values() for r in rows], pass_threshold)
    notes = [
        f"groups rebuilt from {'the uid prompt part (new trainer)' if how == 'uid' else 'identical prompts (legacy trainer: no uid, lines in batch-balancing order)'}; "
        f"group size {G}" + ("" if len(sizes) == 1 else f" (sizes seen: {dict(sorted(sizes.items()))})"),
        f"a completion passes when {_describe(rule)}"
        + ("; `acc` is also the truth beside `score` (the reward-truth gap per step)" if rule == "acc" else ""),
        "verl dumps hold text only: completion lengths and the clipped share are not available"
        + ("" if logged else " (import the file logger with --metrics for response_length/*)"),
    ]
    meta = {"framework": "verl", "source": "import", "format": "verl-rollouts", "imported_from": str(path),
            "imported": time.time(), "verl_trainer": "new (uid)" if how == "uid" else "legacy (no uid)",
            "verifier": _describe(rule), "pass_threshold": pass_threshold if pass_threshold is not None else DEFAULT_PASS,
            "fields": sorted({k for r in all_rows for k in r})}
    if val_dir:
        meta["validation_from"] = str(val_dir)
        notes.append("held-out accuracy per item from the validation dumps (eval set 'validation'; an item passes "
                     f"when {_describe(val_rule)})")
    if logged:
        meta["metrics_from"] = str(metrics)
        meta.update({k: v for k, v in logged.meta.items() if k in ("eval_keys", "accuracy_key", "column_sources")})
        notes.extend(n for n in logged.notes if "per-group" not in n)

    with staged_run(root, name, overwrite) as tmp:
        rec = Recorder(str(tmp), name, ["score"], group_size=G, background=False, flush_secs=3600,
                       meta={**meta, "import_notes": notes})
        scalars = {}
        for s in logged.scalars if logged else []:
            scalars.setdefault(s["step"], {})[s["key"]] = s["value"]
        evals: dict[int, list[dict]] = {}
        for e in logged.evals if logged else []:
            evals.setdefault(e["step"], []).append(e)
        for step in sorted(set(train) | set(val) | set(scalars) | set(evals)):
            if step in val:  # the per-item set first: it is the one "held-out accuracy" means
                log_validation(rec, step, val[step], val_rule)
            for e in evals.get(step, []):
                rec.log_eval_value(step, e["eval_set"], e["value"])
            if step in scalars:
                rec.log_scalars(step, scalars[step])
            if step in grouped:
                log_dump_step(rec, step, grouped[step], rule)
        rec.close("finished")
    return Path(root) / name, notes


def log_dump_step(rec: Recorder, step: int, grouped: tuple[list[dict], list[str], str], rule: str | float) -> None:
    """One training dump (its rows grouped by groups_of) into the recorder: the one-shot import and
    `grpo-diag watch` of a rollout directory log a step the same way."""
    rows, ids, _ = grouped
    rec.log_batch(step, np.array([[float(r["score"])] for r in rows]), group_ids=ids,
                  passed=_passed(rows, rule), prompts=[r["input"] for r in rows],
                  truth=[bool(r["acc"]) for r in rows] if rule == "acc" else None,
                  completions=[r["output"] for r in rows])


def log_validation(rec: Recorder, step: int, rows: list[dict], rule: str | float) -> None:
    rows, ids, _ = groups_of(rows)
    passed = _passed(rows, rule)
    items: dict[str, list[int]] = {}
    for i, gid in enumerate(ids):
        items.setdefault(gid, []).append(i)
    correct = [[bool(passed[i]) for i in members] for members in items.values()]
    first_out = [rows[members[0]]["output"] for members in items.values()]
    rec.log_eval(step, "validation", correct, completions=first_out, mean_as_accuracy=True)
