"""MLflow tracking stores: a `mlruns/` file store or a SQLite database, read through MLflow's own client.

MLflow keeps each metric as its own series of (step, timestamp, value); the rows are rebuilt per step.
A store with one run takes it; several need `--run NAME|ID` (the error lists them). Keys MLflow refuses
arrive renamed by the logger that wrote them (verl: `@` -> `_at_`; transformers: `_`): the key tables
rename them back (diag.importers.mapping.verl_name).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from diag.importers.base import ImportFailure, finite
from diag.importers.logged import Logged, need, pick_run


def uri_of(path: str) -> str:
    """The tracking URI of a path or URI: `sqlite:///...` and `file:...` as given, a `.db` file as SQLite,
    a folder as a file store."""
    if path.startswith(("sqlite:", "file:", "http://", "https://", "postgresql:", "mysql:")):
        return path
    p = Path(path).resolve()
    return f"sqlite:///{p}" if p.is_file() else p.as_uri()


def sniff_db(path: Path) -> bool:
    return "experiments" in _tables(path) and "metrics" in _tables(path)


def sniff_dir(path: Path) -> bool:
    """A `mlruns/` file store: experiment folders with meta.yaml naming an experiment_id."""
    if not path.is_dir():
        return False
    for meta in list(path.glob("*/meta.yaml"))[:20]:
        try:
            if "experiment_id" in meta.read_text(encoding="utf-8", errors="replace"):
                return True
        except OSError:
            continue
    return False


def _tables(path: Path) -> set[str]:
    try:
        with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=2) as con:
            return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error:
        return set()


def read(path: str, run: str | None = None) -> Logged:
    need("mlflow", "MLflow stores")
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 refuses a file store otherwise; read only
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    uri = uri_of(path)
    try:
        client = MlflowClient(tracking_uri=uri)
        exps = client.search_experiments(view_type=ViewType.ALL)
        runs = client.search_runs([e.experiment_id for e in exps], run_view_type=ViewType.ALL, max_results=50000) \
            if exps else []
    except Exception as e:  # noqa: BLE001 - MLflow raises its own kinds for a store it cannot open
        raise ImportFailure(f"{path}: MLflow could not open the tracking store {uri} ({type(e).__name__}: "
                            f"{str(e)[:300]})") from e
    chosen = runs[pick_run(path, "MLflow", [(f"{r.info.run_name} ({r.info.run_id})", r.info.run_name, r.info.run_id)
                                                 for r in runs], run)]
    rows: dict[int, dict] = {}
    for key in sorted(chosen.data.metrics):
        for m in sorted(client.get_metric_history(chosen.info.run_id, key), key=lambda m: (m.step, m.timestamp)):
            rows.setdefault(int(m.step), {})[key] = m.value
    if not rows:
        raise ImportFailure(f"{path}: MLflow run {chosen.info.run_name!r} ({chosen.info.run_id}) has no metrics "
                            "logged: nothing to judge")
    params = {k: finite(v) if finite(v) is not None else v for k, v in chosen.data.params.items()}
    logged = Logged(source=str(path), fmt="mlflow", rows=sorted(rows.items()), config=params,
                    meta={"run_id": chosen.info.run_id, "name": chosen.info.run_name,
                          "experiment_id": chosen.info.experiment_id},
                    closed=chosen.info.status in ("FINISHED", "FAILED", "KILLED"))
    logged.notes.append(f"MLflow run {chosen.info.run_name!r} ({chosen.info.run_id}, {chosen.info.status}): "
                        f"{len(chosen.data.metrics)} metrics over {len(rows)} steps")
    return logged
