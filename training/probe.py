"""Sampling for the pre-flight probe: k completions for each of N training prompts, strictly verified."""

from __future__ import annotations

import time

from diag.probe import ProbeResult, analyse


def run_probe(model: str, task_name: str, prompts: int = 200, k: int = 16, G: int = 8, temperature: float = 1.0,
              max_new_tokens: int = 16, seed: int = 0) -> ProbeResult:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from diag.integrations.trl import generate
    from training.models import display_name, resolve_spec
    from training.pretrained import is_short_name
    from training.tasks import get_task, row_key, split

    path = resolve_spec(model)
    task = get_task(task_name)
    train, _ = split(task, prompts, 300, seed=seed)
    rows = list({row_key(r): r for r in train}.values())[:prompts]  # distinct prompts
    tok = AutoTokenizer.from_pretrained(path)
    mdl = AutoModelForCausalLM.from_pretrained(path)
    if torch.cuda.is_available():
        mdl = mdl.to("cuda")
    torch.manual_seed(seed)
    t = time.perf_counter()
    samples = generate(mdl, tok, [r["prompt"] for r in rows], max_new_tokens, k=k, temperature=temperature)
    correct = [[task.verify(c, r["answer"]) for c in cs] for cs, r in zip(samples, rows)]
    shown = display_name(model) if is_short_name(model) else path  # a short name's Hub id, not its cache path
    res = analyse(correct, model=shown, task=task_name, current_G=G)
    res.seconds = time.perf_counter() - t
    return res
