"""The embedded default's SFT bases, shipped as package data so every machine starts from the same weights.

Tiny models' SFT trajectories differ between CPUs and BLAS builds: the same 1500 SFT steps gave
held-out accuracy 0.47 on one machine and 0.85 on others. The scenarios therefore start from
checkpoints chosen by their measured held-out accuracy (not by a step count) and shipped with the
package (1.4 MB each): `model.path = "base:weak"` or `"base:strong"`.

    python -m training.bases --out DIR     # rebuild (training/bases/__main__.py): SFT, evaluate every 50
                                           # steps, pick the first checkpoint in each band

`base.json` in each folder records how the checkpoint was made and what it measured.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
# name -> (held-out accuracy band on add2, earliest SFT step): the first checkpoint inside the band wins
BANDS = {"weak": ((0.01, 0.06), 150), "strong": ((0.55, 0.75), 500)}
# the tiny vision-language default's SFT bases (on numbers drawn in images), chosen the same way by their
# held-out accuracy on the images: `python -m training.bases.vlm --out DIR`
VLM_BANDS = {"vlm-weak": ((0.02, 0.12), 1000), "vlm-strong": ((0.25, 1.0), 1500)}
NAMES = (*BANDS, *VLM_BANDS)


def shipped_path(name: str) -> Path:
    if name not in NAMES:
        raise ValueError(f"unknown shipped base {name!r}; choose one of {sorted(NAMES)} (model.path = \"base:NAME\")")
    p = HERE / name
    if not (p / "model.safetensors").exists():
        raise FileNotFoundError(f"{p}: the shipped base is missing from this installation; reinstall grpo-diag "
                                f"or rebuild it with `python -m training.bases --out {HERE}`")
    return p


def info(name: str) -> dict:
    return json.loads((shipped_path(name) / "base.json").read_text())


def train_and_pick(trainer, out: Path, picked: dict, bands: dict, max_steps: int) -> dict:
    """Run a base-building SFT trainer (its callback fills `picked`), clean up, and insist every band got a
    checkpoint: the shared end of `python -m training.bases` and `python -m training.bases.vlm`."""
    import shutil

    trainer.train()
    shutil.rmtree(out / ".trainer", ignore_errors=True)
    missing = sorted(set(bands) - set(picked))
    if missing:
        raise RuntimeError(f"no checkpoint within {max_steps} SFT steps fell in the band of {missing}: "
                           f"{ {k: bands[k][0] for k in missing} }; raise --max-steps")
    return picked


def cli(build, what: str, max_steps: int) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=f"rebuild the shipped {what} by held-out accuracy band")
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--max-steps", type=int, default=max_steps)
    a = ap.parse_args()
    print(json.dumps(build(a.out, a.max_steps), indent=1, default=str))


def band_picker(out: Path, bands: dict, every: int, measure, processing_class, record: dict):
    """A TrainerCallback that measures held-out accuracy every `every` steps (`measure(model)` -> (accuracy,
    extra fields)) and saves the first checkpoint inside each band (with `processing_class` and a base.json
    of `record`, the step and what was measured); returns (callback, picked: name -> base.json)."""
    import shutil
    import time

    from transformers import TrainerCallback

    from diag.environment import reproducibility

    picked: dict[str, dict] = {}

    class Pick(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kw):
            step = state.global_step
            if step % every:
                return
            acc, extra = measure(model)
            model.train()
            print(f"[grpo-diag] SFT step {step}: held-out accuracy {acc:.3f} {extra or ''}", flush=True)
            for name, ((lo, hi), first) in bands.items():
                if name not in picked and step >= first and lo <= acc <= hi:
                    dest = out / name
                    shutil.rmtree(dest, ignore_errors=True)
                    model.save_pretrained(dest)
                    processing_class.save_pretrained(dest)
                    picked[name] = {"name": name, "sft_step": step, "heldout_accuracy": acc, **extra, "band": [lo, hi],
                                    **record, "built": time.strftime("%Y-%m-%d"),
                                    "reproducibility": reproducibility({"seed": record.get("seed")})}
                    (dest / "base.json").write_text(json.dumps(picked[name], indent=1))
            if len(picked) == len(bands):
                control.should_training_stop = True

    return Pick(), picked
