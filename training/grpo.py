"""Instrumented GRPO runs: a RunConfig -> TRL GRPOTrainer with grpo-diag attached -> a run directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from training.config import ConfigError, RunConfig
from training.sft_trainer import quiet


def world_size() -> int:
    """Processes in this launch (`accelerate launch --num_processes N` sets WORLD_SIZE); 1 otherwise."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def grpo_args(cfg: RunConfig, out: Path):
    import torch
    from trl import GRPOConfig

    g = cfg.grpo
    cuda = torch.cuda.is_available()
    # prompts_per_step is the global batch: the same config trains the same groups per optimizer step
    # on one process or on N, each process generating its share.
    rows, n = g.prompts_per_step * g.num_generations, world_size()
    if rows % n:
        raise ConfigError(f"grpo.prompts_per_step x grpo.num_generations = {rows} completions per step do not "
                          f"split over {n} processes; make it a multiple of {n}")
    extra: dict[str, Any] = {}
    if g.use_vllm:
        extra.update(use_vllm=True, vllm_mode=g.vllm_mode)
    return GRPOConfig(
        output_dir=str(out),
        max_steps=g.steps,
        learning_rate=g.lr,
        lr_scheduler_type="constant",
        # One generation batch per optimizer step: prompts_per_step groups of num_generations.
        per_device_train_batch_size=rows // n,
        num_generations=g.num_generations,
        max_completion_length=g.max_completion_length,
        temperature=g.temperature,
        beta=g.beta,
        scale_rewards=g.scale_rewards,
        loss_type=g.loss_type,
        reward_weights=g.reward_weights,
        logging_steps=g.logging_steps,
        save_strategy="no",
        report_to=list(g.report_to),
        run_name=cfg.name,
        project="grpo-diag",  # Trackio's project
        trackio_static_space_id=False,  # local only: never create a Hugging Face Space
        seed=cfg.seed,
        data_seed=cfg.seed,
        use_cpu=not cuda,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        gradient_checkpointing=False,  # the tiny model gains nothing from it and runs slower
        disable_tqdm=True,
        dataloader_num_workers=0,
        **extra,
    )


def build_trainer(cfg: RunConfig, runs_dir: str, overwrite: bool = False,
                  listeners: list[Callable] | None = None, callbacks: list | None = None,
                  monitor=None, attach: dict | None = None):
    """The instrumented trainer for a config (not started). `monitor` (a diag.monitor.MonitorConfig)
    replaces the one built from the config's [monitor] table, e.g. to tune detector parameters.
    `attach` ({"recorder", "live_monitor", "step_offset"}) writes into a run that exists (a later phase):
    no probe, no evaluation at its first step (the phase before ended with one)."""
    from datasets import Dataset

    from diag.integrations.trl import DiagConfig, DiagGRPOTrainer, DynamicSampling, HeldOut, SkipDead
    from training.models import load_model, model_name, resolve
    from training.tasks import get_reward, get_task, heldout_sets, split

    task = get_task(cfg.task.name)
    train, held = split(task, cfg.task.n_train, cfg.task.n_eval, seed=cfg.task.seed)
    path = resolve(cfg.model, cfg.seed)
    model, tok = load_model(path)  # a vision-language model comes with its processor (images and tokenizer)
    out = Path(runs_dir) / cfg.name / "checkpoint"
    heldout = [HeldOut(
        rows=rows, verifier=lambda completion, row, judge=judge: judge.verify(completion, row["answer"]),
        name=name, every=cfg.heldout.every, k=cfg.heldout.k, temperature=cfg.heldout.temperature,
        max_new_tokens=cfg.heldout.max_new_tokens, at_start=attach is None,
    ) for name, judge, rows in heldout_sets(held, cfg.heldout.also, cfg.task)]
    probe = None
    if cfg.probe.enabled and is_main_process() and attach is None:  # stored by the main process, so measured there only
        from training.probe import run_probe

        res = run_probe(path, cfg.task.name, prompts=cfg.probe.prompts, k=cfg.probe.k, G=cfg.grpo.num_generations,
                        temperature=cfg.grpo.temperature, max_new_tokens=cfg.grpo.max_completion_length)
        probe = {k: v for k, v in res.to_dict().items() if k != "pass_rates"}
    m = cfg.monitor
    if monitor is None and m.enabled:
        monitor = m.monitor_config()
    diag = DiagConfig(
        root=runs_dir, name=cfg.name, verifier=cfg.grpo.verifier, heldout=heldout, overwrite=overwrite,
        listeners=list(listeners or []), monitor=monitor, keep_best=m.keep_best,
        dynamic_sampling=(DynamicSampling(cfg.remedy.max_rounds, seed=cfg.seed) if cfg.remedy.dynamic_sampling
                          else None),
        skip_dead=(SkipDead(cfg.remedy.skip_after, cfg.remedy.skip_prob, seed=cfg.seed) if cfg.remedy.skip_dead
                   else None),
        meta={"kind": cfg.kind, "task": cfg.task.name, "model": model_name(cfg.model), "model_path": path, "description": cfg.description,
              "run_config": cfg.to_dict(), "n_train_prompts": len(train), "probe": probe},
        **(attach or {}),
    )
    return DiagGRPOTrainer(
        model=model,
        reward_funcs=[get_reward(r) for r in cfg.grpo.rewards],
        args=grpo_args(cfg, out),
        train_dataset=Dataset.from_list(train),
        processing_class=tok,
        callbacks=callbacks,
        diag=diag,
    )


def run_grpo(cfg: RunConfig, runs_dir: str, overwrite: bool = False, progress: bool = True,
             listeners: list[Callable] | None = None) -> Path:
    progress = progress and is_main_process()
    callbacks = [_progress(cfg.name, cfg.grpo.steps)] if progress else None
    trainer = build_trainer(cfg, runs_dir, overwrite, listeners, callbacks)
    quiet(trainer)  # the progress bar (if any) and the run store carry TRL's per-step numbers
    trainer.train()
    if is_main_process():  # TRL's own log, as a checkpoint keeps it (save_strategy "no" writes none)
        trainer.state.save_to_json(str(Path(trainer.args.output_dir) / "trainer_state.json"))
    return Path(runs_dir) / cfg.name


def _progress(name: str, total: int):
    """A one-line tqdm bar with the two numbers that matter: all-fail share and held-out accuracy."""
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        bar = None

        def on_train_begin(self, args, state, control, **kw):
            self.bar = tqdm(total=total, desc=name, unit="step", leave=True, dynamic_ncols=True)

        def on_step_end(self, args, state, control, **kw):
            self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, **kw):
            logs = logs or {}
            shown = {k.split("/")[-1] if k.startswith("diag/") else k: v for k, v in logs.items()
                     if k in ("reward", "diag/frac_all_fail") or k.endswith("/accuracy")}
            if shown and self.bar is not None:
                self.bar.set_postfix({k: round(v, 3) for k, v in shown.items()}, refresh=False)

        def on_train_end(self, args, state, control, **kw):
            if self.bar is not None:
                self.bar.close()

    return Progress()
