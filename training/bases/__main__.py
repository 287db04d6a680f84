"""Rebuild the shipped SFT bases by held-out accuracy band: `python -m training.bases --out DIR`."""

from __future__ import annotations

from pathlib import Path

from training.bases import BANDS, band_picker, cli, train_and_pick


def build(out: Path, max_steps: int = 2000, every: int = 50, seed: int = 0) -> dict:
    """SFT the embedded model on add2, evaluate every `every` steps, keep the first checkpoint in each band."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

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

    def measure(model):
        correct = greedy_eval(model, tok, task, held, 16)[1]
        return sum(correct) / len(correct), {}

    pick, picked = band_picker(out, BANDS, every, measure, tok, {
        "task": "add2", "heldout_items": len(held), "seed": seed, "lr": sft.lr, "batch_size": sft.batch_size})
    out.mkdir(parents=True, exist_ok=True)
    trainer = SFTTrainer(model=model, args=sft_args(out / ".trainer", sft, max_steps, seed), train_dataset=dataset(train),
                         processing_class=tok, callbacks=[pick])
    quiet(trainer)
    return train_and_pick(trainer, out, picked, BANDS, max_steps)


if __name__ == "__main__":
    cli(build, "SFT bases", 2000)
