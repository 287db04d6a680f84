"""tinker-cookbook `metrics.jsonl`: one JSON object per step, evaluations in the same row.

Training keys `env/all/...` (reward/total, by_group/frac_mixed|all_good|all_bad, ac_tokens_per_turn),
evaluation keys `test/env/<set>/...` (correct or reward/total, total_episodes = eval size). The
cookbook's group fractions are exact per-group counts: all_bad (rewards all equal and < 0.5) is
all-fail, all_good (all equal and >= 0.5) all-pass, 1 - frac_mixed the zero-signal share.
"""

from __future__ import annotations

import re
from pathlib import Path

from diag.importers.base import ImportFailure, Parsed, finite, jsonl_lines

ACCURACY_ORDER = ("correct", "accuracy", "reward/total")
TRUTH_KEYS = ("env/all/correct", "env/all/accuracy")
_TEST = re.compile(r"^test/env/(?P<set>[^/]+)/(?P<metric>.+)$")


def sniff(head: str) -> bool:
    line = head.lstrip().split("\n", 1)[0]
    return line.startswith("{") and '"env/all/' in line


def parse(path: Path, accuracy_key: str | None = None) -> Parsed:
    p = Parsed(source=str(path), format="tinker")
    p.meta.update(framework="tinker-cookbook", reward_funcs=["reward"], reward_weights=[1.0])
    rows = []
    for i, r in jsonl_lines(path, "tinker-cookbook writes one object per line"):
        if not isinstance(r, dict) or "step" not in r:
            raise ImportFailure(f"{path}: line {i} has no 'step' key; expected a tinker-cookbook metrics.jsonl row")
        rows.append(r)
    if not rows:
        raise ImportFailure(f"{path}: no rows")
    keys = {k for r in rows for k in r}
    p.fields |= keys
    sets = sorted({m.group("set") for k in keys if (m := _TEST.match(k))})
    chosen = {}
    for s in sets:
        if accuracy_key:
            chosen[s] = accuracy_key if accuracy_key in keys else None
        else:
            chosen[s] = next((f"test/env/{s}/{m}" for m in ACCURACY_ORDER if f"test/env/{s}/{m}" in keys), None)
    chosen = {s: k for s, k in chosen.items() if k}
    if accuracy_key and not chosen:
        raise ImportFailure(f"{path}: --accuracy-key {accuracy_key!r} is not in the log")
    for s, k in chosen.items():
        p.notes.append(f"held-out set {s!r} read from {k!r}, eval size from test/env/{s}/total_episodes")
    if not chosen:
        p.notes.append("no test/env/... metrics: decoupling cannot be judged")
    for r in rows:
        step = int(r["step"])
        for k, v in r.items():
            f = finite(v)
            if f is not None and not isinstance(v, bool) and k != "step":
                p.scalars.append({"step": step, "mode": "eval" if k.startswith("test/") else "train", "key": k, "value": f})
        reward = finite(r.get("env/all/reward/total"))
        if reward is not None:
            mixed = finite(r.get("env/all/by_group/frac_mixed"))
            p.steps.append({
                "step": step, "reward_mean": reward, "func_mean": [reward],
                "frac_all_fail": finite(r.get("env/all/by_group/frac_all_bad")),
                "frac_all_pass": finite(r.get("env/all/by_group/frac_all_good")),
                "frac_zero_signal": None if mixed is None else 1.0 - mixed,
                "len_mean": finite(r.get("env/all/ac_tokens_per_turn")),
                # a correctness metric beside the reward is the truth rate of the training completions
                "truth_rate": next((finite(r[k]) for k in TRUTH_KEYS if finite(r.get(k)) is not None), None),
            })
        for s, k in chosen.items():
            v = finite(r.get(k))
            if v is not None:
                n = finite(r.get(f"test/env/{s}/total_episodes"))
                p.evals.append({"step": step, "eval_set": s if len(chosen) > 1 else "heldout", "metric": "accuracy",
                                "bucket": "all", "value": v, "n": int(n) if n else None})
    return p
