"""Rows of TRL metrics (from trainer_state.json or console output) -> Parsed."""

from __future__ import annotations

from diag.importers.base import Parsed, finite
from diag.importers.mapping import TRL_ROW_KEYS, TRL_STEP_KEYS, other_eval_keys, pick_accuracy_key, trl_func_key, trl_reward_funcs

SKIP_SCALARS = {"step", "epoch_float"}


def parse_trl_rows(rows: list[tuple[int, dict]], p: Parsed, accuracy_key: str | None) -> Parsed:
    """rows: (step, metrics dict) in log order. Training rows fill `steps`; every number becomes a
    scalar; the held-out metric (chosen or recognised) fills `evals`."""
    keys = {k for _, r in rows for k in r}
    p.fields |= keys
    train_keys = {k for _, r in rows if not _is_eval(r) for k in r}
    funcs = trl_reward_funcs(train_keys)
    p.meta.setdefault("framework", "trl")
    p.meta["reward_funcs"] = funcs
    p.meta["reward_weights"] = [1.0] * len(funcs)
    acc_key, eval_set = pick_accuracy_key(keys, accuracy_key, p.source)
    if acc_key:
        p.meta["accuracy_key"] = acc_key
        p.notes.append(f"held-out accuracy read from {acc_key!r}" + ("" if accuracy_key else " (recognised)"))
    else:
        p.notes.append("no held-out accuracy in the log: decoupling cannot be judged (use --accuracy-key)")
    others = other_eval_keys([r for _, r in rows if _is_eval(r)], acc_key)
    if others:
        p.notes.append(f"other held-out sets: {', '.join(others)} (they corroborate a fall of {acc_key!r}; "
                       "one that copies or averages others is left out of the combined evidence)")
    used = {col: next((k for k in keys_ if k in train_keys), None) for col, keys_ in TRL_STEP_KEYS.items()}
    p.meta["column_sources"] = {c: k for c, k in used.items() if k}
    if used["frac_zero_signal"] == "frac_reward_zero_std":
        p.notes.append("frac_zero_signal is TRL's frac_reward_zero_std: computed from the std used to scale "
                       "rewards, it reads ~0 under scale_rewards='batch' even when most groups are dead")
    bad = 0
    for step, r in rows:
        mode = "eval" if _is_eval(r) else "train"
        for k, v in r.items():
            if k in SKIP_SCALARS or isinstance(v, bool):
                continue
            f = finite(v)
            if f is None:
                bad += isinstance(v, (int, float))
                continue
            p.scalars.append({"step": step, "mode": mode, "key": k, "value": f})
        for key, name in ([(acc_key, eval_set)] if acc_key else []) + [(k, k) for k in others]:
            if key in r and finite(r[key]) is not None:
                p.evals.append({"step": step, "eval_set": name, "metric": "accuracy", "bucket": "all",
                                "value": finite(r[key]), "n": None})
        if mode == "train" and any(k in r for k in TRL_ROW_KEYS):
            row = {"step": step, **{c: finite(r.get(k)) if k else None for c, k in used.items()}}
            row["func_mean"] = [finite(r.get(trl_func_key(train_keys, f))) for f in funcs]
            p.steps.append(row)
    if bad:
        p.notes.append(f"{bad} non-finite or out-of-range value(s) stored as missing")
    return p


def _is_eval(r: dict) -> bool:
    return any(k.startswith("eval_") for k in r)
