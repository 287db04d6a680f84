"""Held-out evaluation: each rank generates for its slice of a set (greedy, and sampled for mean@k /
pass@k), the main process gathers the whole set in item order, scores it with the set's strict
verifier and records it; the first set's new best keeps the model (diag.integrations.trl.checkpoints).
Generation goes through the processor with the images for vision-language rows, as TRL's training does."""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from diag.integrations.rows import row_images, sent_prompt
from diag.integrations.trl.checkpoints import save_best
from diag.integrations.trl.config import HeldOut


class Evaluation:
    """The held-out half of the capture (diag.integrations.trl.capture.Capture): reads its trainer,
    held-out sets, recorder, config, main / failed flags, best accuracy and last evaluated step."""

    def evaluate(self, step: int, due_only: bool = False) -> dict | None:
        """Held-out evaluation of every set (with `due_only`, the sets whose `every` divides the step),
        shared by every process: each rank generates for its slice of the items (rows[rank::N]) and the
        main process records the whole set, in item order. Every rank calls this at the same steps (it is
        a collective); only the main process logs and saves. Returns the first evaluated set's result."""
        if not self.heldouts or self.last_eval_step == step:
            return None
        due = [(i, h) for i, h in enumerate(self.heldouts) if not due_only or step % h.every == 0]
        if not due:
            return None
        self.last_eval_step = step
        results = [self._evaluate_set(h, step, primary=i == 0) for i, h in due]
        return results[0]

    def _evaluate_set(self, ho: HeldOut, step: int, primary: bool) -> dict | None:
        t = self.trainer
        t0 = time.perf_counter()
        acc = t.accelerator
        mine = list(range(acc.process_index, len(ho.rows), acc.num_processes))
        rows = [ho.rows[i] for i in mine]
        with _generation_model(t) as model:
            greedy = generate(model, t.processing_class, rows, ho.max_new_tokens, ho.batch_size)
            sampled = (generate(model, t.processing_class, rows, ho.max_new_tokens, ho.batch_size, k=ho.k,
                                temperature=ho.temperature) if ho.k > 1 else None)
        local = [(i, g, None if sampled is None else sampled[j]) for j, (i, g) in enumerate(zip(mine, greedy))]
        if acc.num_processes > 1:
            from accelerate.utils import gather_object

            local = gather_object(local)
        if not self.main or self.failed:
            return None
        done = dict((i, (g, ks)) for i, g, ks in local)
        greedy = [done[i][0] for i in range(len(ho.rows))]
        correct = [bool(ho.verifier(c, r)) for c, r in zip(greedy, ho.rows)]
        buckets = [str(r.get(ho.bucket_key, "all")) for r in ho.rows] if ho.bucket_key else None
        frame = self.recorder.log_eval(step, ho.name, correct, buckets=buckets, completions=greedy)
        result = float(np.mean(correct))
        if primary and self.config.keep_best and result > self.best_accuracy:
            # the processing class as trained with: a tokenizer, or a processor (which saves its tokenizer too)
            self.best_accuracy = result
            save_best(self.recorder, acc.unwrap_model(t.model), t.processing_class, step, result)
        if ho.k > 1:
            per_item = [[bool(ho.verifier(c, r)) for c in done[i][1]] for i, r in enumerate(ho.rows)]
            self.recorder.log_eval(step, ho.name, per_item, buckets=buckets)
        took = time.perf_counter() - t0
        key = "diag/heldout_seconds" if primary else f"diag/{ho.name}/heldout_seconds"
        self.recorder.log_scalars(step, {key: took}, mode="diag")
        t._metrics["train"][f"diag/{ho.name}/accuracy"].append(result)
        return {"accuracy": result, "seconds": took, "frame": frame}


def _generation_model(trainer):
    """The model to generate with on this rank: TRL's own unwrapping (DDP, FSDP, DeepSpeed ZeRO-3 with
    its parameters gathered on every rank, a collective) when there are several processes."""
    import contextlib

    acc = trainer.accelerator
    if acc.num_processes > 1:
        from trl.models import unwrap_model_for_generation

        return unwrap_model_for_generation(trainer.model_wrapped, acc)
    return contextlib.nullcontext(acc.unwrap_model(trainer.model))


def generate(model, tokenizer, prompts: Sequence[Any], max_new_tokens: int, batch_size: int = 256,
             k: int = 1, temperature: float = 1.0) -> list:
    """Greedy (k=1) or sampled completions as text; returns list[str] or list[list[str]] for k>1.

    `prompts`: texts, chat message lists, or rows {"prompt", "image" | "images"} (a held-out set's rows).
    `tokenizer`: a tokenizer, or a vision-language processor: rows with images then go through the
    processor with their pixels, as TRL's training path sends them (the image block inserted into the
    first user message); without that the model would see an image token and no image."""
    import torch

    tok = getattr(tokenizer, "tokenizer", tokenizer)
    was_training = model.training
    model.eval()
    side = tok.padding_side
    tok.padding_side = "left"  # decoder-only batch generation needs left padding (and image positions)
    out: list = []
    try:
        for i in range(0, len(prompts), batch_size):
            enc = encode(tokenizer, prompts[i: i + batch_size]).to(model.device)
            kwargs = dict(max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id)
            if k > 1:
                kwargs.update(do_sample=True, temperature=temperature, num_return_sequences=k, top_k=0, top_p=1.0)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            with torch.no_grad():
                seqs = model.generate(**enc, **kwargs)
            new = seqs[:, enc["input_ids"].shape[1]:]
            decoded = tok.batch_decode(new, skip_special_tokens=True)
            if k > 1:
                decoded = [decoded[j: j + k] for j in range(0, len(decoded), k)]
            out.extend(decoded)
    finally:
        tok.padding_side = side
        if was_training:
            model.train()
    return out


def encode(processor, prompts: Sequence[Any]):
    """A left-padded batch for generation: text through the tokenizer; rows with images through the
    processor with their pixels (chat prompts with the image block inserted where TRL inserts it)."""
    tok = getattr(processor, "tokenizer", processor)
    rows = [p if isinstance(p, dict) else {"prompt": p} for p in prompts]
    images = [row_images(r) for r in rows]
    if any(images):
        if getattr(processor, "image_processor", None) is None:
            raise ValueError("held-out rows carry images but the processing class is a tokenizer: pass the "
                             "model's processor (AutoProcessor) so the images reach the model")
        texts = [processor.apply_chat_template(sent_prompt(r), tokenize=False, add_generation_prompt=True)
                 for r in rows]
        return processor(text=texts, images=[im for im in images if im], return_tensors="pt", padding=True)
    texts = [r["prompt"] if isinstance(r["prompt"], str) else
             tok.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True) for r in rows]
    return tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
