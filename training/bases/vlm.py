"""Rebuild the shipped vision-language bases by held-out accuracy band: `python -m training.bases.vlm --out DIR`.

SFT of the random tiny VLM (training/vlm.py, seed 0) on digits-image (numbers drawn in images only: mixed
with their written form, the model learned the text and never the images), batch 32, lr 2e-3; every 1000
steps greedy accuracy on 100 held-out image items and on the same items written out; the first checkpoint
inside each band of VLM_BANDS (image accuracy) is kept.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from training.bases import VLM_BANDS, band_picker, cli, train_and_pick


def build(out: Path, max_steps: int = 8000, every: int = 1000, seed: int = 0) -> dict:
    from trl import SFTTrainer

    from training.config import SFTCfg
    from training.sft_trainer import dataset, quiet, sft_args
    from training.tasks import get_task, greedy_eval, split, visual
    from training.vlm import load_vlm, save_tiny_vlm

    out.mkdir(parents=True, exist_ok=True)
    model, proc = load_vlm(save_tiny_vlm(out / ".random", seed=seed))
    task = get_task("digits-image")
    train, _ = split(task, 20_000, 300, seed=seed)
    _, held = split(task, 2000, 100, seed=0)
    text = [visual.twin(r) for r in held]
    sft = SFTCfg(lr=2e-3, batch_size=32)

    def measure(model):
        image, written = (greedy_eval(model, proc, task, rows, 6)[1] for rows in (held, text))
        return sum(image) / len(image), {"heldout_accuracy_text": sum(written) / len(written)}

    pick, picked = band_picker(out, VLM_BANDS, every, measure, proc, {
        "task": "digits-image", "heldout_items": len(held), "seed": seed, "lr": sft.lr, "batch_size": sft.batch_size})
    trainer = SFTTrainer(model=model, args=sft_args(out / ".trainer", sft, max_steps, seed), train_dataset=dataset(train),
                         processing_class=proc, callbacks=[pick])
    quiet(trainer)
    picked = train_and_pick(trainer, out, picked, VLM_BANDS, max_steps)
    shutil.rmtree(out / ".random", ignore_errors=True)
    return picked


if __name__ == "__main__":
    cli(build, "VLM bases", 8000)
