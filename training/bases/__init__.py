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
