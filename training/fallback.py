"""The SFT fallback (`[remedy] on_signal_gap = "sft"`): GRPO that falls back to a supervised warm-start
when RL cannot learn, as one recorded run in phases.

    probe -> [GRPO until the monitor confirms a signal gap] -> SFT on the task's demonstrations -> probe
          -> GRPO for the remaining steps, from the SFT model

When the pre-flight probe already predicts a gap, the first GRPO phase is skipped (unless
`fallback_when = "monitor"`: then only a gap the monitor confirms starts the warm-start). Every phase writes
into the same recorder on one step axis (an SFT step counts as a step), so the charts run on; run.json's
`phases` lists each phase with its first and last step and why it began, and the SFT phase carries the
probe of the model it produced. The monitor runs through all phases, so the gap alert that stopped the
first phase is resolved in the second when the groups carry signal again. One process only.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

from training.config import ConfigError, RunConfig


def run_with_fallback(cfg: RunConfig, runs_dir: str, overwrite: bool = False, progress: bool = True,
                      monitor=None, listeners: list[Callable] | None = None) -> Path:
    """`monitor`: a diag.monitor.MonitorConfig replacing the one built from [monitor] (its stop_on gains
    "signal_gap" for the first phase)."""
    from diag.probe import predicts_gap
    from training.grpo import build_trainer, world_size
    from training.sft import sft_phase

    if world_size() > 1:
        raise ConfigError("remedy.on_signal_gap = \"sft\" runs on one process; launch it without accelerate's "
                          "--num_processes, or set on_signal_gap = \"none\" for a multi-process GRPO run")
    m = cfg.monitor
    mon_cfg = monitor or m.monitor_config()
    user_stop = tuple(mon_cfg.stop_on)
    mon_cfg = replace(mon_cfg, stop_on=tuple(dict.fromkeys((*user_stop, "signal_gap"))))
    first = build_trainer(replace(cfg, probe=replace(cfg.probe, enabled=True)), runs_dir, overwrite,
                          listeners=listeners, monitor=mon_cfg, callbacks=_bar(cfg, progress))
    cap = first._diag
    cap.owned = False  # the recorder and the monitor live through every phase: closed here
    rec, mon = cap.recorder, cap.monitor
    phases: list[dict] = []

    def begin(phase: str, start: int, reason: str, **extra) -> dict:
        phases.append({"phase": phase, "start": start, "end": None, "reason": reason, **extra})
        rec.update_meta(phases=phases)
        return phases[-1]

    try:
        done = 0
        probe = rec.writer.meta.get("probe")
        if cfg.remedy.fallback_when == "probe" and probe is not None and predicts_gap(probe):
            G = str(probe["current_G"])
            why = (f"the pre-flight probe predicts a signal gap (all-fail share {probe['all_fail_share'][G]:.2f} "
                   f"at G={G})")
        else:
            p = begin("grpo", 1, "GRPO as configured")
            _train(first)
            done = p["end"] = int(first.state.global_step)
            rec.update_meta(phases=phases)
            stop = mon.stop_requested or ""
            if not stop.startswith("signal_gap") or done >= cfg.grpo.steps:
                return _finish(rec, mon, "finished")
            why = "the monitor confirmed a signal gap" + stop[len("signal_gap"):].split(":")[0]
        # the warm-start, on the model as it is now (the base, or the first phase's)
        tok = first.processing_class
        p = begin("sft", done + 1, why, steps=cfg.sft.steps, n_examples=cfg.sft.n_examples or cfg.task.n_train)
        out = Path(rec.path) / "sft-checkpoint"
        if progress:
            print(f"[grpo-diag] {cfg.name}: SFT warm-start, {cfg.sft.steps} steps from step {done + 1} ({why})")
        # the model was measured at the end of the phase before; a base that never trained is measured first
        sft_phase(cfg, first.model, tok, rec, out, step_offset=done, evaluate_start=done == 0)
        p["end"] = done = done + cfg.sft.steps
        p["probe_after"] = _probe(cfg, out)
        rec.update_meta(phases=phases)
        del first
        # GRPO again from the SFT model, for the steps left; stopping is the user's again
        mon.stop_requested = None
        mon.config = replace(mon.config, stop_on=user_stop)
        grpo_done = sum(q["end"] - q["start"] + 1 for q in phases if q["phase"] == "grpo")
        left = max(1, cfg.grpo.steps - grpo_done)
        begin("grpo", done + 1, "GRPO after the SFT warm-start")
        cfg2 = replace(cfg, model=replace(cfg.model, path=str(out)), grpo=replace(cfg.grpo, steps=left))
        second = build_trainer(cfg2, runs_dir, callbacks=_bar(cfg2, progress),
                               attach={"recorder": rec, "live_monitor": mon, "step_offset": done})
        _train(second)
        phases[-1]["end"] = done + int(second.state.global_step)
        rec.update_meta(phases=phases)
        return _finish(rec, mon, "finished")
    except BaseException as e:
        _finish(rec, mon, "crashed", error=f"{type(e).__name__}: {e}")
        raise


def _bar(cfg: RunConfig, progress: bool) -> list | None:
    from training.grpo import _progress

    return [_progress(cfg.name, cfg.grpo.steps)] if progress else None


def _train(trainer) -> None:
    from training.sft_trainer import quiet

    quiet(trainer)  # the progress bar (if any) and the run store carry TRL's per-step numbers
    trainer.train()


def _probe(cfg: RunConfig, path: Path) -> dict:
    from training.probe import run_probe

    res = run_probe(str(path), cfg.task.name, prompts=cfg.probe.prompts, k=cfg.probe.k, G=cfg.grpo.num_generations,
                    temperature=cfg.grpo.temperature, max_new_tokens=cfg.grpo.max_completion_length)
    return {k: v for k, v in res.to_dict().items() if k != "pass_rates"}


def _finish(rec, mon, status: str, error: str | None = None) -> Path:
    mon.close()
    if mon.stop_requested:
        rec.update_meta(stop_reason=mon.stop_requested)
    rec.close(status, error=error)
    return Path(rec.path)
