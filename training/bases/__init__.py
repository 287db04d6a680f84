"""The embedded default's SFT bases, shipped as package data so every machine starts from the same weights.

Tiny models' SFT trajectories differ between CPUs and BLAS builds: the same 1500 SFT steps gave
held-out accuracy 0.47 on one machine and 0.85 on others. The scenarios therefore start from
checkpoints chosen by their measured held-out accuracy (not by a step count) and shipped with the
package (1.4 MB each): `model.path = "base:weak"` or `"base:strong"`.

    python -m training.bases --out DIR     # rebuild: SFT, evaluate every 50 steps, pick by band

`base.json` in each folder records how the checkpoint was made and what it measured.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

HERE = Path(__file__).parent
# name -> (held-out accuracy band on add2, earliest SFT step): the first checkpoint inside the band wins
BANDS = {"weak": ((0.01, 0.06), 150), "strong": ((0.55, 0.75), 500)}


def shipped_path(name: str) -> Path:
    if name not in BANDS:
        raise ValueError(f"unknown shipped base {name!r}; choose one of {sorted(BANDS)} (model.path = \"base:NAME\")")
    p = HERE / name
    if not (p / "model.safetensors").exists():
        raise FileNotFoundError(f"{p}: the shipped base is missing from this installation; reinstall grpo-diag "
                                f"or rebuild it with `python -m training.bases --out {HERE}`")
    return p


def info(name: str) -> dict:
    return json.loads((shipped_path(name) / "base.json").read_text())


def build(out: Path, max_steps: int = 2000, every: int = 50, seed: int = 0) -> dict:
    """SFT the embedded model on add2, evaluate every `every` steps, keep the first checkpoint in each band."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTTrainer

    from diag.environment import reproducibility
    from training.config import ModelCfg, SFTCfg
    from training.grpo import quiet
    from training.models import tiny_path
    from training.sft import _args, _dataset
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
    trainer = SFTTrainer(model=model, args=_args(out / ".trainer", sft, max_steps, seed), train_dataset=_dataset(train),
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
