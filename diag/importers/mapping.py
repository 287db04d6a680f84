"""Mapping logged metric names onto the steps table, shared by the TRL-style importers.

TRL's names changed across versions (`rewards/<f>` became `rewards/<f>/mean`, `completion_length`
became `completions/mean_length`); verl uses its own. The importer records which source key filled
each column so a report can say where a number came from.
"""

from __future__ import annotations

import re

from diag.importers.base import ImportFailure

# steps column -> source keys, first present wins
TRL_STEP_KEYS = {
    "reward_mean": ("reward", "rewards/mean"),
    "reward_std": ("reward_std",),
    # TRL's share of groups whose reward std was ~0, measured on the std used for scaling: under
    # scale_rewards="batch" it reads ~0 even when most groups are dead (see the README).
    "frac_zero_signal": ("frac_reward_zero_std",),
    "len_mean": ("completions/mean_length", "completion_length"),
    "frac_clipped": ("completions/clipped_ratio",),
}
VERL_STEP_KEYS = {
    "reward_mean": ("critic/score/mean",),
    "len_mean": ("response_length/mean",),
    "frac_clipped": ("response_length/clip_ratio",),
}
_TRL_FUNC = re.compile(r"^rewards/(?P<name>.+?)(?:/mean)?$")

ACCURACY_CANDIDATES = (
    re.compile(r"^eval_(accuracy|acc|exact_match|correct|test_accuracy)$"),
    re.compile(r"^eval_.*accuracy$"),
    re.compile(r"^val-core/(?P<set>.+)/(reward|acc)/mean@1$"),
    re.compile(r"^val/test_score/(?P<set>.+)$"),
    re.compile(r"^val-core/(?P<set>.+)/.+/mean@\d+$"),
)


# eval_* keys that are not a held-out accuracy however their values fall in [0, 1]
_NOT_ACCURACY = re.compile(r"loss|runtime|per_second|epoch|step|entropy|kl|len|time|grad|lr|reward|score|std|tokens|"
                           r"clip|ratio|perplexity|memory")


def other_eval_keys(rows: list[dict], acc_key: str | None) -> list[str]:
    """The evaluation keys besides `acc_key` that read as accuracies of other held-out sets (every value
    a number in [0, 1], no name of a loss, a length, a timing or a reward): a run evaluated on MATH-500,
    AIME and MMLU logs one `eval_<set>` key per benchmark."""
    if not acc_key:
        return []
    seen: dict[str, bool] = {}
    for r in rows:
        for k, v in r.items():
            if not k.startswith("eval_") or k == acc_key or _NOT_ACCURACY.search(k[5:]):
                continue
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0
            seen[k] = seen.get(k, True) and ok
    return sorted(k for k, ok in seen.items() if ok)


def trl_reward_funcs(keys: set[str]) -> list[str]:
    """Reward function names from `rewards/<f>/mean` (new) or `rewards/<f>` (old) keys."""
    names = []
    for k in sorted(keys):
        if k.endswith("/std") or not k.startswith("rewards/"):
            continue
        m = _TRL_FUNC.match(k)
        if m and m.group("name") not in names:
            names.append(m.group("name"))
    return names


def trl_func_key(keys: set[str], name: str) -> str:
    return f"rewards/{name}/mean" if f"rewards/{name}/mean" in keys else f"rewards/{name}"


def pick_accuracy_key(keys: set[str], requested: str | None, source: str) -> tuple[str | None, str | None]:
    """(key, eval_set): the requested key, or the first recognised held-out metric."""
    if requested:
        if requested not in keys:
            close = sorted(k for k in keys if "eval" in k or "val" in k)[:12]
            raise ImportFailure(f"{source}: --accuracy-key {requested!r} is not in the log; keys that look like "
                                f"evaluations: {close or 'none'}")
        m = next((c.match(requested) for c in ACCURACY_CANDIDATES if c.match(requested)), None)
        return requested, (m.groupdict().get("set") if m else None) or requested
    for pattern in ACCURACY_CANDIDATES:
        for k in sorted(keys):
            m = pattern.match(k)
            if m:
                return k, m.groupdict().get("set") or k
    return None, None


_VERL_CORE = re.compile(r"^val-core/(?P<set>.+)/(?P<var>[^/]+)/mean@(?P<n>\d+)$")


def verl_eval_keys(keys: set[str]) -> dict[str, str]:
    """{data source: key} of verl's headline validation metric per data source: `acc` before
    `reward` / `score` (accuracy is what a verifier decides), the largest N of `mean@N`."""
    best: dict[str, tuple] = {}
    for k in keys:
        m = _VERL_CORE.match(k)
        if not m:
            continue
        rank = (m.group("var") == "acc", m.group("var") in ("reward", "score"), int(m.group("n")))
        if m.group("set") not in best or rank > best[m.group("set")][0]:
            best[m.group("set")] = (rank, k)
    return {s: best[s][1] for s in sorted(best)}
