"""SFT with TRL's SFTTrainer on a task's prompt/completion pairs, held-out accuracy recorded.

Two uses: building the cached base checkpoints of the embedded default (weak = few steps, strong =
many), and `kind = "sft"` runs that land in the run store beside GRPO runs for comparison.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from training.config import ModelCfg, RunConfig, SFTCfg
from training.grpo import quiet


def _dataset(rows: list[dict]):
    """Prompt-completion pairs: the worked solution where the task has one, else the bare answer; chat
    prompts get an assistant message (TRL applies the chat template and trains on the completion only)."""
    from datasets import Dataset

    def pair(r: dict) -> dict:
        target = r.get("solution") or r["answer"]
        if isinstance(r["prompt"], list):
            return {"prompt": r["prompt"], "completion": [{"role": "assistant", "content": target}]}
        return {"prompt": r["prompt"], "completion": target}

    return Dataset.from_list([pair(r) for r in rows])


def _args(out: Path, sft: SFTCfg, steps: int, seed: int, **extra):
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(out), max_steps=steps, per_device_train_batch_size=sft.batch_size,
        learning_rate=sft.lr, lr_scheduler_type="constant", warmup_steps=int(sft.warmup_ratio * steps),
        logging_steps=50, save_strategy="no", report_to=[], seed=seed, data_seed=seed,
        use_cpu=not _cuda(), bf16=False, gradient_checkpointing=False, max_length=sft.max_length,
        disable_tqdm=True, dataloader_num_workers=0, **extra,
    )


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def save_checkpoints_at(steps: set[int], root: Path, tokenizer):
    """A callback that saves model + tokenizer when the step reaches one of `steps` (the cached bases)."""
    from transformers import TrainerCallback

    class SaveAt(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kw):
            if state.global_step in steps and state.is_world_process_zero:
                dest = root / f"step-{state.global_step}"
                tmp = root / f".step-{state.global_step}.tmp"
                shutil.rmtree(tmp, ignore_errors=True)
                model.save_pretrained(tmp)
                tokenizer.save_pretrained(tmp)
                shutil.rmtree(dest, ignore_errors=True)
                tmp.rename(dest)  # a half-written checkpoint never looks complete

    return SaveAt()


def build_base(m: ModelCfg, sft: SFTCfg, root: Path, save_at: list[int]) -> None:
    """Train the embedded model on m.base_task and save checkpoints at `save_at` steps."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    from training.models import tiny_path
    from training.tasks import get_task, split

    root.mkdir(parents=True, exist_ok=True)
    src = tiny_path(m, m.base_seed)
    tok = AutoTokenizer.from_pretrained(src)
    model = AutoModelForCausalLM.from_pretrained(src)
    train, _ = split(get_task(m.base_task), 20_000, 500, seed=m.base_seed)
    trainer = SFTTrainer(
        model=model, args=_args(root / "trainer", sft, max(save_at), m.base_seed),
        train_dataset=_dataset(train), processing_class=tok,
        callbacks=[save_checkpoints_at(set(save_at), root, tok)],
    )
    quiet(trainer)
    print(f"[grpo-diag] building SFT base {root.name}: {max(save_at)} steps, checkpoints at {save_at}")
    trainer.train()
    shutil.rmtree(root / "trainer", ignore_errors=True)


def run_sft(cfg: RunConfig, runs_dir: str, overwrite: bool = False) -> Path:
    """A recorded SFT run: loss into scalars, held-out accuracy every `sft.eval_every` steps."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTTrainer

    from diag.recorder import Recorder
    from training.models import model_name, resolve
    from training.tasks import get_task, greedy_eval, split

    task = get_task(cfg.task.name)
    train, held = split(task, cfg.task.n_train, cfg.task.n_eval, seed=cfg.task.seed)
    train = train[: cfg.sft.n_examples or len(train)]
    path = resolve(cfg.model, cfg.seed)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    rec = Recorder(runs_dir, cfg.name, ["sft"], group_size=None, overwrite=overwrite, meta={
        "framework": "trl", "kind": "sft", "source": "live", "model": model_name(cfg.model), "model_path": path,
        "task": cfg.task.name,
        "n_train_examples": len(train), "config": cfg.to_dict(), "description": cfg.description,
    })

    def evaluate(step: int) -> None:
        outs, correct = greedy_eval(model, tok, task, held, cfg.heldout.max_new_tokens)
        rec.log_eval(step, "heldout", correct, buckets=[r["bucket"] for r in held], completions=outs)

    class Rec(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            rec.log_scalars(state.global_step, logs or {})

        def on_step_end(self, args, state, control, **kw):
            if state.global_step % cfg.sft.eval_every == 0 or state.global_step == args.max_steps:
                evaluate(state.global_step)

    with rec:
        evaluate(0)
        trainer = SFTTrainer(model=model, args=_args(Path(runs_dir) / cfg.name / "checkpoint", cfg.sft,
                                                      cfg.sft.steps, cfg.seed),
                             train_dataset=_dataset(train), processing_class=tok, callbacks=[Rec()])
        quiet(trainer)
        trainer.train()
        trainer.save_model(str(Path(runs_dir) / cfg.name / "checkpoint"))
    return rec.path
