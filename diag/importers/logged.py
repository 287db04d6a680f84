"""What a tracker holds for one run (W&B, TensorBoard, MLflow, Trackio), and how it becomes a `Parsed`.

Each tracker reader (wandb_log, tensorboard_log, mlflow_store, trackio_db) returns a `Logged`: the
rows as the tracker keeps them, `(step, {key: value})` in log order, with the run's config. Which trainer
named the keys is told from the keys themselves (diag.importers.mapping.ecosystem): TRL's names as
transformers' `report_to` callbacks rewrite them (`train/reward`, `eval/accuracy`, step in
`train/global_step`), TRL's raw names (its MLflow callback), or verl's (`critic/score/mean`,
`val-core/<source>/acc/mean@N`, `@` arriving as `_at_` through MLflow). The rows are then handed, renamed
back, to the same code that reads a trainer_state.json (TRL) or a verl console log (verl), so a run gives
the same series and verdict whichever way it was logged.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from diag.importers import mapping
from diag.importers.base import ImportFailure, Parsed, finite
from diag.importers.trl_logs import parse_trl_rows
from diag.importers.verl_console import from_metrics

EXTRAS = {"wandb": "wandb", "tensorboard": "tensorboard", "mlflow": "mlflow", "trackio": "trackio"}


@dataclass
class Logged:
    source: str
    fmt: str  # wandb | tensorboard | mlflow | trackio
    rows: list[tuple[int, dict]] = field(default_factory=list)  # (tracker step, metrics) in log order
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)  # run id, project, name as the tracker knows them
    notes: list[str] = field(default_factory=list)
    closed: bool = False  # the tracker recorded the run's end


def need(module: str, what: str):
    """Import a tracker's library, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        extra = EXTRAS.get(module.split(".")[0], "loggers")
        raise ImportFailure(f"reading {what} needs the {module.split('.')[0]!r} package: "
                            f"pip install 'grpo-diag[{extra}]' (or 'grpo-diag[loggers]' for all four trackers)") from e


def pick_run(source: str, what: str, runs: list[tuple[str, ...]], run: str | None) -> int:
    """The index of the run named `run` (any of its names: a name, an id, a folder; the first is shown), or of
    the only run; a store with several and no `run` is an error listing them, never one chosen silently."""
    listed = ", ".join(r[0] for r in runs[:20])
    if run is not None:
        hits = [i for i, names in enumerate(runs) if run in names]
        if len(hits) == 1:
            return hits[0]
        why = f"{len(hits)} {what} runs are named {run!r}; pass its id" if hits else f"no {what} run {run!r}"
        raise ImportFailure(f"{source}: {why}; runs: {listed or 'none'}")
    if not runs:
        raise ImportFailure(f"{source}: the {what} store holds no runs with logged metrics yet")
    if len(runs) > 1:
        raise ImportFailure(f"{source}: {len(runs)} {what} runs here; pick one with --run NAME: {listed}")
    return 0


def to_parsed(logged: Logged, accuracy_key: str | None = None) -> Parsed:
    """The tracker's rows read as the trainer that named them would have written them."""
    keys = {k for _, r in logged.rows for k in r}
    if not logged.rows:
        raise ImportFailure(f"{logged.source}: the {logged.fmt} run holds no logged metrics yet")
    eco, why = mapping.ecosystem(keys)
    if eco == "verl":
        p = _verl(logged, accuracy_key)
    elif eco in ("trl", "trl-raw"):
        p = _trl(logged, eco, accuracy_key)
    else:
        p = _unknown(logged)
    p.notes[:0] = logged.notes + [f"keys read as {why}"]
    p.meta.update(_config_meta(logged.config, p.meta.get("framework")))
    p.meta["tracker"] = {"kind": logged.fmt, **logged.meta, "closed": logged.closed}
    p.notes.append(mapping.describe_mapping(p, eco))
    return p


def _trl(logged: Logged, eco: str, accuracy_key: str | None) -> Parsed:
    rows, origin, clashes = mapping.trl_rows(logged.rows, rewritten=eco == "trl")
    p = Parsed(source=logged.source, format=logged.fmt)
    if clashes:
        p.notes.append("; ".join(clashes[:6]))
    if accuracy_key and eco == "trl":
        accuracy_key = mapping.trl_raw_name(accuracy_key)
    parse_trl_rows(rows, p, accuracy_key)
    p.meta["key_origin"] = origin
    return p


def _verl(logged: Logged, accuracy_key: str | None) -> Parsed:
    by_step: dict[int, dict] = {}
    origin: dict[str, str] = {}
    for step, row in logged.rows:
        merged = by_step.setdefault(step, {})
        for k, v in row.items():
            name = mapping.verl_name(k)
            origin.setdefault(name, k)
            f = finite(v) if not isinstance(v, bool) else None
            if f is not None:
                merged[name] = f
    if accuracy_key:
        accuracy_key = mapping.verl_name(accuracy_key)
    p = from_metrics({s: r for s, r in by_step.items() if r}, logged.source, logged.fmt, accuracy_key)
    p.meta["key_origin"] = origin
    return p


def _unknown(logged: Logged) -> Parsed:
    """Keys no table knows: every number kept as a scalar, no reward or accuracy guessed."""
    p = Parsed(source=logged.source, format=logged.fmt, meta={"framework": "unknown"})
    for step, row in logged.rows:
        for k, v in row.items():
            f = finite(v) if not isinstance(v, bool) else None
            if f is not None and not k.startswith("_"):
                p.scalars.append({"step": step, "mode": "train", "key": k[:200], "value": f})
                p.fields.add(k)
    return p


def _config_meta(config: dict, framework: str | None) -> dict:
    """The settings a verdict or a reader wants (learning rate, group size, model), from the run's config:
    TRL's flat names or verl's nested ones."""
    flat = mapping.flatten(config)
    out = {}
    for target, names in mapping.CONFIG_KEYS.items():
        v = next((flat[n] for n in names if flat.get(n) not in (None, "")), None)
        if v is not None:
            out[target] = v
    if "group_size" in out:  # MLflow keeps params as text
        g = finite(out.pop("group_size"))
        if g is not None and g >= 1:
            out["group_size"] = int(g)
    return {"config": {k: flat[k] for k in sorted(flat)[:400] if isinstance(flat[k], (int, float, str, bool))},
            **out} if flat else out
