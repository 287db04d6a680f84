"""TRL `log_completions` Parquet files (`completions/completions_{step:05d}.parquet`): whole groups
are rebuilt from consecutive rows that share a prompt, and go through the same per-group statistics
as a live run. Caveat from TRL itself: at evaluation steps the eval rows overwrite that step's file."""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl

from diag.importers.base import ImportFailure, staged_run
from diag.recorder import Recorder

NON_REWARD = {"step", "prompt", "completion", "advantage", "image", "images"}


def sniff_path(path: Path) -> bool:
    files = _files(path) if path.exists() else []
    return bool(files)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        inner = path / "completions" if (path / "completions").is_dir() else path
        return sorted(inner.glob("completions_*.parquet"))
    return [path] if path.suffix == ".parquet" else []


def import_completions(path: Path, root: str, name: str, overwrite: bool = False,
                       group_size: int | None = None) -> Path:
    files = _files(path)
    if not files:
        raise ImportFailure(f"{path}: no completions_*.parquet files (TRL writes them with log_completions=True)")
    frames = []
    for f in files:
        try:
            frames.append(pl.read_parquet(f))
        except Exception as e:  # noqa: BLE001 - report the file, whatever the decoder says
            raise ImportFailure(f"{f}: unreadable Parquet ({e})") from e
    df = pl.concat(frames, how="diagonal_relaxed")
    missing = [c for c in ("step", "prompt", "completion") if c not in df.columns]
    if missing:
        raise ImportFailure(f"{path}: column(s) {missing} missing; expected TRL's step, prompt, completion, "
                            "one column per reward function and advantage")
    funcs = [c for c in df.columns if c not in NON_REWARD and df[c].dtype.is_numeric()]
    if not funcs:
        raise ImportFailure(f"{path}: no numeric reward columns besides {sorted(NON_REWARD & set(df.columns))}")
    with staged_run(root, name, overwrite) as tmp:
        rec = Recorder(str(tmp), name, funcs, group_size=group_size, background=False, flush_secs=3600,
                       meta={"framework": "trl", "source": "import", "format": "trl-completions",
                             "imported_from": str(path), "imported": time.time(), "fields": df.columns,
                             "import_notes": ["groups rebuilt from consecutive rows sharing a prompt"]})
        for (step,), part in df.group_by(["step"], maintain_order=True):
            prompts = [str(x) for x in part["prompt"].to_list()]
            # consecutive rows with the same prompt form a group (RepeatSampler order)
            ids, gid = [], -1
            for i, pr in enumerate(prompts):
                if i == 0 or pr != prompts[i - 1]:
                    gid += 1
                ids.append(gid)
            rewards = part.select(funcs).cast(pl.Float64).to_numpy()
            adv = part["advantage"].cast(pl.Float64).to_numpy() if "advantage" in part.columns else None
            rec.log_batch(int(step), rewards, group_ids=ids, advantages=adv, prompts=prompts,
                          completions=[str(c) for c in part["completion"].to_list()])
        rec.close("finished")
    return Path(root) / name

