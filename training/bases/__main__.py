"""Rebuild the shipped SFT bases by held-out accuracy band: `python -m training.bases --out DIR`."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from training.bases import BANDS, HERE


def build(out: Path, max_steps: int = 2000, every: int = 50, seed: int = 0) -> dict:
    """SFT the embedded model on add2, evaluate every `every` steps, keep the first checkpoint in each band."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTTrainer

    from diag.environment import reproducibility
    from training.config import ModelCfg, SFTCfg
    from training.models import tiny_path
    from training.sft_trainer import dataset, quiet, sft_args
    from training.tasks import get_task, greedy_eval, split

    m, sft = ModelCfg(path="base"), SFTCfg()
    src = tiny_path(m, seed)
    tok, model = AutoTokenizer.from_pretrained(src), AutoModelForCausalLM.from_pretrained(src)
    task = get_task("add2")
    train, _ = split(task, 20_000, 500, seed=seed)
    _, held = split(task, 4000, 300, seed=0)  # the scenarios' held-out set
    picked: dict[str, dict] = {}

    class Pick(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kw):
            step = state.global_step
            if step % every:
                return
            _, correct = greedy_eval(model, tok, task, held, 16)
            model.train()
            acc = sum(correct) / len(correct)
            print(f"[grpo-diag] SFT step {step}: held-out accuracy {acc:.3f}", flush=True)
            for name, ((lo, hi), first) in BANDS.items():
                if name not in picked and step >= first and lo <= acc <= hi:
                    dest = out / name
                    shutil.rmtree(dest, ignore_errors=True)
                    model.save_pretrained(dest)
                    tok.save_pretrained(dest)
                    picked[name] = {"name": name, "sft_step": step, "heldout_accuracy": acc, "band": [lo, hi],
                                    "task": "add2", "heldout_items": len(held), "seed": seed, "lr": sft.lr,
                                    "batch_size": sft.batch_size, "built": time.strftime("%Y-%m-%d"),
                                    "reproducibility": reproducibility({"seed": seed})}
                    (dest / "base.json").write_text(json.dumps(picked[name], indent=1))
            if len(picked) == len(BANDS):
                control.should_training_stop = True

    out.mkdir(parents=True, exist_ok=True)
    trainer = SFTTrainer(model=model, args=sft_args(out / ".trainer", sft, max_steps, seed), train_dataset=dataset(train),
                         processing_class=tok, callbacks=[Pick()])
    quiet(trainer)
    trainer.train()
    shutil.rmtree(out / ".trainer", ignore_errors=True)
    missing = sorted(set(BANDS) - set(picked))
    if missing:
        raise RuntimeError(f"no checkpoint within {max_steps} SFT steps fell in the band of {missing}: "
                           f"{ {k: BANDS[k][0] for k in missing} }; raise --max-steps")
    return picked


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="rebuild the shipped SFT bases by held-out accuracy band")
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--max-steps", type=int, default=2000)
    a = ap.parse_args()
    print(json.dumps(build(a.out, a.max_steps), indent=1, default=str))
