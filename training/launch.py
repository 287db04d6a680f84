"""Dispatch a RunConfig by kind: sft, grpo, or sft_grpo (SFT first, then GRPO from its checkpoint)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from training.config import RunConfig


def launch(cfg: RunConfig, runs_dir: str, overwrite: bool = False, progress: bool = True) -> Path:
    from training.grpo import run_grpo
    from training.sft import run_sft

    if cfg.kind == "sft":
        return run_sft(cfg, runs_dir, overwrite=overwrite)
    if cfg.kind == "grpo" and cfg.remedy.on_signal_gap == "sft":
        from training.fallback import run_with_fallback

        return run_with_fallback(cfg, runs_dir, overwrite=overwrite, progress=progress)
    if cfg.kind == "grpo":
        return run_grpo(cfg, runs_dir, overwrite=overwrite, progress=progress)
    # sft_grpo: the SFT stage is a run of its own ("<name>-sft"), so both stages are comparable.
    sft_cfg = replace(cfg, name=f"{cfg.name}-sft", kind="sft")
    sft_path = run_sft(sft_cfg, runs_dir, overwrite=overwrite)
    from training.models import model_name

    grpo_cfg = replace(cfg, model=replace(cfg.model, path=str(sft_path / "checkpoint"),
                                          name=f"{model_name(cfg.model)} + SFT ({sft_cfg.name})"))
    return run_grpo(grpo_cfg, runs_dir, overwrite=overwrite, progress=progress)
