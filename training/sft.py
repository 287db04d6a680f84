"""Recorded SFT runs (`kind = "sft"`): TRL's SFTTrainer on a task's prompt/completion pairs, loss and
held-out accuracy in the run store beside GRPO runs for comparison. The trainer plumbing (shared with
the embedded model's bases) is in training.sft_trainer. `sft_phase` is the same training written into a
recorder that already exists: the SFT warm-start of a run in phases (training.fallback).
"""

from __future__ import annotations

from pathlib import Path

from training.config import RunConfig
from training.sft_trainer import dataset, quiet, sft_args


def run_sft(cfg: RunConfig, runs_dir: str, overwrite: bool = False) -> Path:
    """A recorded SFT run: loss into scalars, held-out accuracy every `sft.eval_every` steps."""
    from diag.recorder import Recorder
    from training.models import load_model, model_name, resolve
    from training.tasks import get_task, split

    train, _ = split(get_task(cfg.task.name), cfg.task.n_train, cfg.task.n_eval, seed=cfg.task.seed)
    path = resolve(cfg.model, cfg.seed)
    rec = Recorder(runs_dir, cfg.name, ["sft"], group_size=None, overwrite=overwrite, meta={
        "framework": "trl", "kind": "sft", "source": "live", "model": model_name(cfg.model), "model_path": path,
        "task": cfg.task.name,
        "n_train_examples": len(train[: cfg.sft.n_examples or len(train)]), "config": cfg.to_dict(),
        "description": cfg.description,
    })
    with rec:
        sft_phase(cfg, *load_model(path), rec, Path(runs_dir) / cfg.name / "checkpoint")
    return rec.path


def sft_phase(cfg: RunConfig, model, tok, rec, out: Path, step_offset: int = 0, evaluate_start: bool = True) -> Path:
    """SFT of `model` (in place) into `rec`: loss as scalars and held-out accuracy (eval set "heldout")
    every `sft.eval_every` steps, at `step_offset` + the SFT step. The model is saved at `out`, returned."""
    from transformers import TrainerCallback
    from trl import SFTTrainer

    from training.tasks import get_task, greedy_eval, heldout_sets, split

    task = get_task(cfg.task.name)
    train, held = split(task, cfg.task.n_train, cfg.task.n_eval, seed=cfg.task.seed)
    train = train[: cfg.sft.n_examples or len(train)]

    sets = heldout_sets(held, cfg.heldout.also, cfg.task)

    def evaluate(step: int) -> None:
        for name, judge, rows in sets:  # the same held-out sets as a GRPO run of this config
            outs, correct = greedy_eval(model, tok, judge, rows, cfg.heldout.max_new_tokens)
            rec.log_eval(step_offset + step, name, correct, buckets=[r["bucket"] for r in rows], completions=outs)

    class Rec(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            rec.log_scalars(step_offset + state.global_step, logs or {})

        def on_step_end(self, args, state, control, **kw):
            if state.global_step % cfg.sft.eval_every == 0 or state.global_step == args.max_steps:
                evaluate(state.global_step)

    if evaluate_start:
        evaluate(0)
    trainer = SFTTrainer(model=model, args=sft_args(out, cfg.sft, cfg.sft.steps, cfg.seed),
                         train_dataset=dataset(train), processing_class=tok, callbacks=[Rec()])
    quiet(trainer)
    trainer.train()
    trainer.save_model(str(out))
    tok.save_pretrained(str(out))
    return out
