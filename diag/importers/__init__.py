"""Import runs made elsewhere, so `check`, `report` and the dashboard work on them.

    grpo-diag import PATH [--format auto|trainer-state|trl-console|verl-console|verl-rollouts|verl-file|
                                    trl-completions|tinker|generic|wandb|tensorboard|mlflow|trackio] [--run NAME]

Trackers (W&B run folders and `wandb://` runs, TensorBoard folders, MLflow stores, Trackio databases) are
read into a `Logged` (diag.importers.logged) and named by the trainer that wrote them, with no flag.
"""

from __future__ import annotations

from pathlib import Path

from diag.importers import (generic, mlflow_store, tensorboard_log, tinker, trackio_db, trainer_state, trl_completions,
                            trl_console, verl_console, verl_files, wandb_log)
from diag.importers.base import ImportFailure, Parsed, write_run
from diag.importers.logged import to_parsed
from diag.sizes import EvalSize, size_of

TRACKERS = ("wandb", "tensorboard", "mlflow", "trackio")  # read through the tracker's own library
FORMATS = ("trainer-state", "trl-console", "verl-console", "verl-rollouts", "verl-file", "trl-completions", "tinker",
           "generic", *TRACKERS)
URI_FORMATS = {"wandb://": "wandb", "sqlite:": "mlflow", "file:": "mlflow", "http://": "mlflow", "https://": "mlflow"}


def detect_format(path: Path | str) -> str:
    uri = next((f for prefix, f in URI_FORMATS.items() if str(path).startswith(prefix)), None)
    if uri:
        return uri
    path = Path(path)
    if not path.exists():
        raise ImportFailure(f"{path}: no such file or directory")
    if path.is_dir() or path.suffix == ".parquet":
        if trl_completions.sniff_path(path):
            return "trl-completions"
        if verl_files.sniff_dump_dir(path):
            return "verl-rollouts"
        state = path / "trainer_state.json"
        if state.is_file():
            return "trainer-state"
        for fmt, sniff in (("wandb", wandb_log.sniff), ("mlflow", mlflow_store.sniff_dir),
                           ("tensorboard", tensorboard_log.sniff)):
            if sniff(path):
                return fmt
        raise ImportFailure(f"{path}: a directory without trainer_state.json, completions_*.parquet files, verl "
                            "{step}.jsonl dumps, a W&B run (run-*.wandb), an MLflow store (mlruns/) or TensorBoard "
                            "event files")
    if path.stat().st_size == 0:
        raise ImportFailure(f"{path}: the file is empty")
    with path.open("rb") as f:  # the head only: a tracker's database can be gigabytes
        raw = f.read(2_000_000)
    if wandb_log.sniff(path) or raw[:4] == wandb_log.MAGIC:
        return "wandb"
    if tensorboard_log.sniff(path):
        return "tensorboard"
    if raw[:16] == b"SQLite format 3\0":
        if mlflow_store.sniff_db(path):
            return "mlflow"
        if trackio_db.sniff(path):
            return "trackio"
        raise ImportFailure(f"{path}: an SQLite database that is neither an MLflow store nor a Trackio project")
    head = raw.decode("utf-8", errors="replace")
    if trainer_state.sniff(head):
        return "trainer-state"
    if verl_files.sniff_file_logger(head):
        return "verl-file"
    if tinker.sniff(head):
        return "tinker"
    if verl_console.sniff(head):
        return "verl-console"
    if trl_console.sniff(head):
        return "trl-console"
    raise ImportFailure(f"{path}: format not recognised; pass --format one of {', '.join(FORMATS)} "
                        "(a hand-written loop's log: --format generic with --map or --profile)")


def default_name(path: Path | str, run: str | None = None) -> str:
    import re

    text = str(path)
    if run:
        stem = run
    elif text.startswith(tuple(URI_FORMATS)):
        stem = Path(text.split("://", 1)[-1].rstrip("/")).stem
    else:
        path = Path(path)
        if path.is_dir() and (path.name in ("wandb", "latest-run") or wandb_log.sniff(path)):
            try:  # the run's own id (run-<id>), not the folder every run shares
                path = wandb_log.run_file(path)
            except ImportFailure:
                pass
        stem = path.parent.name if path.name in ("trainer_state.json", "completions") else path.stem
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "imported"
    return name[:100]


def import_log(path: str | Path, fmt: str = "auto", name: str | None = None, root: str = "runs",
               accuracy_key: str | None = None, overwrite: bool = False,
               logging_steps: int | None = None, maps: list[str] | None = None, profile: str | None = None,
               eval_size: EvalSize | None = None, reward_range: tuple[float, float] | None = None,
               save_profile: str | None = None, validation_dir: str | None = None,
               metrics: str | None = None, pass_threshold: float | None = None,
               run: str | None = None) -> tuple[Path, list[str]]:
    """Import one log; returns the run directory and the importer's notes (what it chose, and why).

    `eval_size` fills the item count of evaluations the log does not size; `reward_range` declares
    the reward's range (stored in run.json; the signal detector splits zero-std shares with it).
    verl rollout dumps take `validation_dir` (trainer.validation_data_dir), `metrics` (the file
    logger's JSONL) and `pass_threshold` (score that passes when the dump has no `acc`). `run` picks one run of
    a tracker store that holds several (a TensorBoard folder, an MLflow store, a Trackio project)."""
    uri = str(path).startswith(tuple(URI_FORMATS))
    path = str(path) if uri else Path(path)
    if (maps or profile) and not uri:
        fmt = "generic" if fmt == "auto" else fmt
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in FORMATS:
        raise ImportFailure(f"unknown format {fmt!r}; choose auto or one of {', '.join(FORMATS)}")
    if run is not None and fmt not in TRACKERS:
        raise ImportFailure(f"{path}: --run picks a run of a tracker store ({', '.join(TRACKERS)}), not of {fmt}")
    name = name or default_name(path, run)
    verl_extras = [o for o, v in (("--validation-dir", validation_dir), ("--metrics", metrics),
                                  ("--pass-threshold", pass_threshold)) if v is not None]
    if verl_extras and fmt != "verl-rollouts":
        raise ImportFailure(f"{path}: {', '.join(verl_extras)} go with a verl rollout dump directory "
                            f"(format verl-rollouts), not {fmt}")
    if fmt == "verl-rollouts":
        return verl_files.import_dumps(path, root, name, overwrite, validation=validation_dir, metrics=metrics,
                                       accuracy_key=accuracy_key, pass_threshold=pass_threshold)
    if fmt == "trl-completions":
        out = trl_completions.import_completions(path, root, name, overwrite)
        return out, ["groups rebuilt from consecutive rows sharing a prompt"]
    parsed = parse_log(path, fmt, accuracy_key, logging_steps, maps, profile, eval_size, reward_range, run)
    if save_profile and fmt == "generic":
        saved = generic.save_profile(parsed.meta["import_mapping"], save_profile)
        parsed.notes.append(f"mapping saved as profile {saved} (reuse with --profile {save_profile})")
    return write_run(parsed, root, name, overwrite), parsed.notes


STREAMED = ("trainer-state", "trl-console", "verl-console", "verl-file", "tinker", "generic", *TRACKERS)  # to a Parsed


def parse_log(path: Path | str, fmt: str, accuracy_key: str | None = None, logging_steps: int | None = None,
              maps: list[str] | None = None, profile: str | None = None,
              eval_size: EvalSize | None = None, reward_range: tuple[float, float] | None = None,
              run: str | None = None) -> Parsed:
    """One log of a STREAMED format parsed as it stands, evaluations sized and the reward range set: the
    one-shot import and `grpo-diag watch` (diag.watch, which hands it the complete lines written so far)
    read it the same way."""
    if fmt in TRACKERS:
        parsed = to_parsed(read_tracker(path, fmt, run), accuracy_key)
    else:
        parsed = _parse(Path(path), fmt, accuracy_key, logging_steps, maps, profile, eval_size)
    for e in parsed.evals:
        if e.get("n") is None:
            e["n"] = size_of(eval_size, e["eval_set"])
    unsized = [e for e in parsed.evals if e.get("n") is None]
    if unsized:
        sets = sorted({str(e["eval_set"]) for e in unsized})
        parsed.notes.append(f"{len(unsized)} evaluation(s) without an eval size ({', '.join(sets)}): a fall of "
                            "accuracy is judged from the spread between evaluations, a weaker test (pass --eval-size "
                            "N, or SET=N per set)")
    if reward_range is not None:
        lo, hi = float(reward_range[0]), float(reward_range[1])
        if not hi > lo:
            raise ImportFailure(f"--reward-range {lo},{hi}: the top must be above the bottom, e.g. --reward-range 0,1")
        parsed.meta["reward_range"] = [lo, hi]
    return parsed


def read_tracker(path: Path | str, fmt: str, run: str | None = None):
    """A tracker's run as it holds it (diag.importers.logged.Logged)."""
    if fmt == "wandb":
        if run is not None:
            raise ImportFailure(f"{path}: a W&B run folder holds one run; point at the wandb/run-* folder instead "
                                "of passing --run")
        return wandb_log.read_api(str(path)) if str(path).startswith("wandb://") else wandb_log.read(path)
    if fmt == "tensorboard":
        return tensorboard_log.read(path, run)
    if fmt == "mlflow":
        return mlflow_store.read(str(path), run)
    return trackio_db.read(path, run)


def _parse(path: Path, fmt: str, accuracy_key, logging_steps, maps, profile, eval_size) -> Parsed:
    if path.is_dir():
        path = path / "trainer_state.json"
    if fmt == "trainer-state":
        return trainer_state.parse(path, accuracy_key)
    if fmt == "trl-console":
        return trl_console.parse(path, accuracy_key, logging_steps)
    if fmt == "verl-file":
        return verl_files.parse_file_logger(path, accuracy_key)
    if fmt == "tinker":
        return tinker.parse(path, accuracy_key)
    if fmt == "generic":
        mapping = generic.parse_maps(maps)
        if accuracy_key and "accuracy" not in mapping:
            mapping["accuracy"] = accuracy_key
        return generic.parse(path, mapping, profile, size_of(eval_size, "heldout"))
    if fmt == "verl-console":
        return verl_console.parse(path, accuracy_key)
    raise ImportFailure(f"{path}: format {fmt!r} is not read line by line; choose one of {', '.join(STREAMED)}")


__all__ = ["import_log", "parse_log", "STREAMED", "TRACKERS", "URI_FORMATS", "detect_format", "ImportFailure",
           "FORMATS"]
