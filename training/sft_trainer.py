"""TRL SFTTrainer plumbing shared by recorded SFT runs (training.sft), the cached bases of the embedded
model (training.models) and the shipped bases (training.bases).

It imports nothing else from `training` but the config and the tasks, so the launchers sit above it
and the import graph has no cycle: config/tasks -> sft_trainer -> models -> sft, grpo -> launch.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from training.config import ModelCfg, SFTCfg


def dataset(rows: list[dict]):
    """Prompt-completion pairs: the worked solution where the task has one, else the bare answer; chat
    prompts get an assistant message (TRL applies the chat template and trains on the completion only)."""
    from datasets import Dataset

    def pair(r: dict) -> dict:
        target = r.get("solution") or r["answer"]
        if isinstance(r["prompt"], list):
            # an image travels in its own column: TRL inserts it into the prompt for a vision-language model
            extra = {"image": r["image"]} if r.get("image") is not None else {}
            return {"prompt": r["prompt"], "completion": [{"role": "assistant", "content": target}], **extra}
        return {"prompt": r["prompt"], "completion": target}

    return Dataset.from_list([pair(r) for r in rows])


def sft_args(out: Path, sft: SFTCfg, steps: int, seed: int, **extra):
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(out), max_steps=steps, per_device_train_batch_size=sft.batch_size,
        learning_rate=sft.lr, lr_scheduler_type="constant", warmup_steps=int(sft.warmup_ratio * steps),
        logging_steps=50, save_strategy="no", report_to=[], seed=seed, data_seed=seed,
        use_cpu=not cuda(), bf16=False, gradient_checkpointing=False, max_length=sft.max_length,
        disable_tqdm=True, dataloader_num_workers=0, **extra,
    )


def cuda() -> bool:
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


def build_base(src: Path, m: ModelCfg, sft: SFTCfg, root: Path, save_at: list[int]) -> None:
    """Train the embedded model at `src` on m.base_task and save checkpoints at `save_at` steps."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    from training.tasks import get_task, split

    root.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(src)
    model = AutoModelForCausalLM.from_pretrained(src)
    train, _ = split(get_task(m.base_task), 20_000, 500, seed=m.base_seed)
    trainer = SFTTrainer(
        model=model, args=sft_args(root / "trainer", sft, max(save_at), m.base_seed),
        train_dataset=dataset(train), processing_class=tok,
        callbacks=[save_checkpoints_at(set(save_at), root, tok)],
    )
    quiet(trainer)
    print(f"[grpo-diag] building SFT base {root.name}: {max(save_at)} steps, checkpoints at {save_at}")
    trainer.train()
    shutil.rmtree(root / "trainer", ignore_errors=True)


def quiet(trainer) -> None:
    """Drop the per-step dict printing (the progress bar and the run store carry those numbers)."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
