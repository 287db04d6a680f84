"""Mapping logged metric names onto the steps table, shared by the TRL-style importers.

TRL's names changed across versions (`rewards/<f>` became `rewards/<f>/mean`, `completion_length`
became `completions/mean_length`); verl uses its own. The importer records which source key filled
each column so a report can say where a number came from.
"""

from __future__ import annotations

import re

from diag.importers.base import ImportFailure, finite

# steps column -> source keys, first present wins. TRL's names as trainer_state.json keeps them; a tracker's
# copy (`train/reward` under report_to) is renamed back by trl_rows first. `diag/*` are grpo-diag's own
# per-group numbers that an instrumented TRL run sends into TRL's stream, so trackers hold them too.
TRL_STEP_KEYS = {
    "reward_mean": ("reward", "rewards/mean", "objective/scores"),  # objective/scores: TRL's PPO / RLOO
    "reward_std": ("reward_std",),
    # TRL's share of groups whose reward std was ~0, measured on the std used for scaling: under
    # scale_rewards="batch" it reads ~0 even when most groups are dead (see the README).
    "frac_zero_signal": ("diag/frac_zero_signal", "frac_reward_zero_std"),
    "frac_all_fail": ("diag/frac_all_fail",),
    "frac_all_pass": ("diag/frac_all_pass",),
    "frac_tied": ("diag/frac_tied",),
    "truth_rate": ("diag/truth_rate",),
    "len_mean": ("completions/mean_length", "completion_length"),
    "frac_clipped": ("diag/frac_clipped", "completions/clipped_ratio"),
}
TRL_ROW_KEYS = ("reward", "loss", "rewards/mean", "objective/scores")  # a training row has one of these
VERL_STEP_KEYS = {
    "reward_mean": ("critic/score/mean",),
    "len_mean": ("response_length/mean",),
    "frac_clipped": ("response_length/clip_ratio",),
}
_TRL_FUNC = re.compile(r"^rewards/(?P<name>.+?)(?:/mean)?$")

ACCURACY_CANDIDATES = (
    re.compile(r"^eval_(accuracy|acc|exact_match|correct|test_accuracy)$"),
    re.compile(r"^diag/(?P<set>[^/]+)/accuracy$"),  # grpo-diag's held-out verifier, sent into TRL's stream
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


# ---------------------------------------------------------------------------------------- trackers
# How a tracker's copy of a run names its keys; diag.importers.logged reads a run through these.

VERL_MARKERS = ("critic/score/mean", "critic/rewards/mean", "actor/pg_loss", "response_length/mean")
# `loss` alone is any trainer's (an SFT run's too): it marks no trainer
TRL_MARKERS = ("reward", "rewards/mean", "objective/scores", "frac_reward_zero_std", "completions/mean_length",
               "completion_length")


def ecosystem(keys: set[str]) -> tuple[str | None, str]:
    """(which trainer named these keys, in words): "verl", "trl" (transformers' report_to names), "trl-raw"
    (trainer_state names, as TRL's MLflow callback keeps them) or None. Keys of two trainers are said."""
    names = {verl_name(k) for k in keys}
    verl = sum(k in names for k in VERL_MARKERS) + any(k.startswith("val-core/") for k in names)
    rewritten = {trl_raw_name(k) for k in keys if k.startswith(("train/", "eval/"))}
    trl = sum(k in rewritten for k in TRL_MARKERS) + ("train/global_step" in keys)
    raw = sum(k in keys for k in TRL_MARKERS) + any(k.startswith(("eval_", "rewards/")) for k in keys)
    found = [(verl, "verl", "verl's (critic/score/mean, val-core/<source>/...)"),
             (trl, "trl", "TRL's as transformers' report_to logs them (train/<key>, eval/<key>, the step "
                          "from train/global_step)"),
             (raw, "trl-raw", "TRL's trainer_state names (reward, rewards/<f>/mean, eval_<x>)")]
    found = sorted((f for f in found if f[0]), key=lambda f: -f[0])
    if not found:
        return None, ("no trainer's: none of TRL's or verl's names (" + ", ".join(TRL_MARKERS[:3] + VERL_MARKERS[:1]) +
                      ") is here, so no reward or accuracy is guessed; every number is kept as a scalar "
                      "(export to JSONL and import with --format generic --map to name them)")
    why = found[0][2]
    if len(found) > 1:
        why += f"; keys of {found[1][1]} are here too ({found[1][0]} against {found[0][0]} recognised names)"
    return found[0][1], why


def trl_raw_name(key: str) -> str:
    """The trainer_state name of a key transformers' rewrite_logs renamed for W&B, TensorBoard and Trackio."""
    for prefix, raw in (("train/", ""), ("eval/", "eval_"), ("test/", "test_")):
        if key.startswith(prefix):
            return raw + key[len(prefix):]
    return key


def trl_rows(rows: list[tuple[int, dict]], rewritten: bool) -> tuple[list[tuple[int, dict]], dict, list[str]]:
    """Tracker rows as trainer_state.json's log_history would hold them: (trainer step, metrics), names
    renamed back, the step from `train/global_step` where the tracker counted log calls (W&B, Trackio), a
    row that holds both a training log and an evaluation of the same step (TensorBoard and MLflow key
    values by step) split in two, as the trainer logged them. Also {name: tracker key} and the keys that
    renamed onto a name already there (kept first)."""
    out: dict[tuple, tuple[int, dict]] = {}
    origin, clashes, again, current = {}, [], [], None
    counted = rewritten and any("train/global_step" in r for _, r in rows)  # W&B / Trackio count log calls
    for step, row in rows:
        gs = finite(row.get("train/global_step")) if counted else None
        current = int(gs) if gs is not None else current if counted and current is not None else step
        named: dict = {}
        for k, v in row.items():
            if k.startswith(("_", "profiling/", "train/profiling/")) or k == "train/global_step":
                continue  # profiling/: TRL's timings of single calls, sent to W&B / Trackio apart from its logs
            name = trl_raw_name(k) if rewritten else k
            if name in named:
                if f"{k} (as {name})" not in clashes:
                    clashes.append(f"{k} (as {name})")
                continue
            origin.setdefault(name, k)
            named[name] = v
        ev = {k: v for k, v in named.items() if k.startswith(("eval_", "test_"))}
        train = {k: v for k, v in named.items() if k not in ev}
        if ev and set(train) - {"epoch"}:
            parts = [train, {**ev, **({"epoch": train["epoch"]} if "epoch" in train else {})}]
        else:
            parts = [named] if named else []
        for part in parts:
            if set(part) <= {"epoch"}:  # the end-of-training row, its totals sent to the summary instead
                continue
            kind = (current, any(k.startswith(("eval_", "test_")) for k in part), "train_runtime" in part)
            if kind in out and set(out[kind][1]) & set(part):  # a resumed run logs its steps again: the later row kept
                again.append(current)
                del out[kind]
            elif kind in out:  # more keys of the same step, logged apart (another callback's row): one row
                part = {**out.pop(kind)[1], **part}
            out[kind] = (current, part)
    if clashes:  # one key that could mean two things: said, never chosen silently
        clashes = ["keys that rename onto a name already there, the first kept: " + ", ".join(clashes[:8])]
    if again:
        clashes.append(f"{len(again)} row(s) logged again for steps {min(again)}-{max(again)} (a resumed run): "
                       "the later rows kept")
    return list(out.values()), origin, clashes


_VERL_AT = re.compile(r"(mean|best|maj|worst|std)_(?:at_)?(\d+)(?=/|$)")


def verl_name(key: str) -> str:
    """verl's own name of a key MLflow made safe (`val-core/aime/acc/mean_at_30` -> `mean@30`)."""
    return _VERL_AT.sub(r"\1@\2", key) if key.startswith(("val-core/", "val-aux/", "val/")) else key


def flatten(config: dict, prefix: str = "") -> dict:
    """A nested config as one level of dotted names (`actor_rollout_ref.rollout.n`); MLflow's `/` too."""
    out = {}
    for k, v in (config or {}).items():
        name = f"{prefix}{str(k).replace('/', '.')}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "."))
        else:
            out[name] = v
    return out


# run.json field -> config names, first present wins (TRL's GRPOConfig flat; verl's Hydra config nested)
CONFIG_KEYS = {
    "learning_rate": ("learning_rate", "actor_rollout_ref.actor.optim.lr"),
    "group_size": ("num_generations", "actor_rollout_ref.rollout.n"),
    "model": ("model_name_or_path", "_name_or_path", "actor_rollout_ref.model.path"),
}

# what each steps column adds to the verdict, said when the log lacks it
COLUMN_USE = {
    "reward_mean": "the reward side of decoupling", "len_mean": "length blow-up as a cause",
    "frac_clipped": "clipping as a cause", "frac_zero_signal": "the signal gap",
    "frac_all_fail": "the signal gap's all-fail share", "truth_rate": "the reward-truth gap",
}


def describe_mapping(p, eco: str | None) -> str:
    """"mapped: reward_mean <- train/reward, ...; not found: ..." in the tracker's own key names."""
    origin = p.meta.get("key_origin", {})
    src = p.meta.get("column_sources", {})
    mapped = [f"{col} <- {origin.get(k, k)}" for col, k in src.items()]
    sets = p.meta.get("eval_keys") or {}
    for s in sorted({e["eval_set"] for e in p.evals}):
        key = sets.get(s) or (p.meta.get("accuracy_key") if s not in sets and s == _first_set(p) else s)
        mapped.append(f"accuracy[{s}] <- {origin.get(key, key)}")
    funcs = p.meta.get("reward_funcs") or []
    if eco in ("trl", "trl-raw") and funcs:
        mapped.append("reward functions <- " + ", ".join(origin.get(trl_func_key(p.fields, f), f) for f in funcs))
    table = VERL_STEP_KEYS if eco == "verl" else TRL_STEP_KEYS if eco else {}
    missing = [f"{c} ({COLUMN_USE[c]})" for c in table if c not in src and c in COLUMN_USE]
    if not p.evals:
        missing.append("held-out accuracy (decoupling; pass --accuracy-key KEY if the log has one)")
    return ("mapped: " + (", ".join(mapped) or "nothing") + "; not found: " + (", ".join(missing) or "nothing"))


def _first_set(p) -> str | None:
    return p.evals[0]["eval_set"] if p.evals else None
