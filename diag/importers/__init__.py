"""Import runs made elsewhere, so `check`, `report` and the dashboard work on them.

    grpo-diag import PATH [--format auto|trainer-state|trl-console|verl-console|trl-completions]
"""

from __future__ import annotations

from pathlib import Path

from diag.importers import trainer_state, trl_completions, trl_console, verl_console
from diag.importers.base import ImportFailure, Parsed, write_run

FORMATS = ("trainer-state", "trl-console", "verl-console", "trl-completions")


def detect_format(path: Path) -> str:
    if not path.exists():
        raise ImportFailure(f"{path}: no such file or directory")
    if path.is_dir() or path.suffix == ".parquet":
        if trl_completions.sniff_path(path):
            return "trl-completions"
        state = path / "trainer_state.json"
        if state.is_file():
            return "trainer-state"
        raise ImportFailure(f"{path}: a directory without trainer_state.json or completions_*.parquet files")
    if path.stat().st_size == 0:
        raise ImportFailure(f"{path}: the file is empty")
    head = path.read_bytes()[:2_000_000].decode("utf-8", errors="replace")
    if trainer_state.sniff(head):
        return "trainer-state"
    if verl_console.sniff(head):
        return "verl-console"
    if trl_console.sniff(head):
        return "trl-console"
    raise ImportFailure(f"{path}: format not recognised; pass --format one of {', '.join(FORMATS)}")


def default_name(path: Path) -> str:
    import re

    stem = path.parent.name if path.name in ("trainer_state.json", "completions") else path.stem
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "imported"
    return name[:100]


def import_log(path: str | Path, fmt: str = "auto", name: str | None = None, root: str = "runs",
               accuracy_key: str | None = None, overwrite: bool = False,
               logging_steps: int | None = None) -> tuple[Path, list[str]]:
    """Import one log; returns the run directory and the importer's notes (what it chose, and why)."""
    path = Path(path)
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in FORMATS:
        raise ImportFailure(f"unknown format {fmt!r}; choose auto or one of {', '.join(FORMATS)}")
    name = name or default_name(path)
    if fmt == "trl-completions":
        out = trl_completions.import_completions(path, root, name, overwrite)
        return out, ["groups rebuilt from consecutive rows sharing a prompt"]
    if path.is_dir():
        path = path / "trainer_state.json"
    if fmt == "trainer-state":
        parsed: Parsed = trainer_state.parse(path, accuracy_key)
    elif fmt == "trl-console":
        parsed = trl_console.parse(path, accuracy_key, logging_steps)
    else:
        parsed = verl_console.parse(path, accuracy_key)
    return write_run(parsed, root, name, overwrite), parsed.notes


__all__ = ["import_log", "detect_format", "ImportFailure", "FORMATS"]
