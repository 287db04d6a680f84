"""TRL console output: one Python dict literal per logging step, amid tqdm bars and warnings.

The step is not in the dict. tqdm writes to stderr and the dicts to stdout, so in a merged log their
order is unreliable: the step is the row index times the logging interval, which is --logging-steps
when given, else the training bar's total ("35/200 [" -> 200) divided by the number of rows when that
divides evenly, else the row index (said so in the run's notes).
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

from diag.importers.base import ImportFailure, Parsed
from diag.importers.trl_logs import parse_trl_rows

DICT = re.compile(r"\{'[^{}\n]*\}")
BAR = re.compile(r"(\d+)/(\d+) \[")
BARE = re.compile(r"(?<![\w'\"])(-?inf|nan)(?![\w'\"])")


def sniff(head: str) -> bool:
    return bool(re.search(r"\{'(loss|reward|train_runtime|eval_)", head))


def parse(path: Path, accuracy_key: str | None = None, logging_steps: int | None = None) -> Parsed:
    text = path.read_bytes().decode("utf-8", errors="replace")  # console logs carry stray bytes
    totals = Counter(int(m.group(2)) for m in BAR.finditer(text))
    dicts, skipped = [], 0
    for m in DICT.finditer(text):
        literal = BARE.sub("None", m.group(0))
        try:
            d = ast.literal_eval(literal)
        except (ValueError, SyntaxError):
            skipped += 1  # a dict cut off by a crash, or not a metrics dict
            continue
        if isinstance(d, dict) and (any(k in d for k in ("loss", "reward")) or
                                    any(str(k).startswith("eval_") for k in d)):
            dicts.append({str(k): v for k, v in d.items()})
    if not dicts:
        raise ImportFailure(f"{path}: no TRL metric dicts found (expected lines like "
                            "{'loss': ..., 'reward': ...}); is this a TRL console log?")
    n_train = sum(1 for d in dicts if not any(k.startswith("eval_") for k in d))
    total = totals.most_common(1)[0][0] if totals else None
    if logging_steps:
        every, how = logging_steps, f"--logging-steps {logging_steps}"
    elif total and n_train and total % n_train == 0:
        every, how = total // n_train, f"progress-bar total {total} / {n_train} rows"
    else:
        every, how = 1, "row index (no usable progress bar; pass --logging-steps)"
    rows, index = [], 0
    for d in dicts:
        if not any(k.startswith("eval_") for k in d):
            index += 1
        rows.append((max(index, 1) * every, d))  # an eval row belongs to the last training step
    p = Parsed(source=str(path), format="trl-console")
    p.meta["step_source"] = how
    p.notes.append(f"steps from {how}")
    if skipped:
        p.notes.append(f"{skipped} malformed dict(s) skipped (e.g. cut off at a crash)")
    # repeated steps (a bar that did not advance) keep their order but get distinct rows
    return parse_trl_rows(rows, p, accuracy_key)
