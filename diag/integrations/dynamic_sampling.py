"""Dynamic sampling for TRL's GRPOTrainer (DAPO's remedy for zero-signal groups).

After a generation batch is scored, groups whose advantages are all zero (all-fail, all-pass, tied:
no learning signal) are replaced by live groups from extra generation rounds on fresh prompts, until
the batch holds only live groups or `max_rounds` extra rounds were spent. The batch keeps its size,
so TRL's splitting into gradient-accumulation slices is unchanged. Each round is a full local batch
on every process: TRL's scoring gathers across processes, so every rank runs the same number of
rounds (the decision to run another is all-reduced). Per step the recorder gets the rounds, the
groups dropped and the live share of the batch actually trained on.

Limits: text prompts only (image keys are refused with a clear error); under scale_rewards="batch" a
refilled group keeps the advantages of the round it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

@dataclass
class DynamicSampling:
    max_rounds: int = 3  # extra generation rounds per step at most (each a full batch of fresh prompts)
    seed: int = 0

    def __post_init__(self):
        if self.max_rounds < 1:
            raise ValueError("DynamicSampling.max_rounds must be >= 1 (extra generation rounds per step)")


def live_groups(advantages, G: int):
    """[groups] bool tensor: a group is live when any of its completions has a non-zero advantage."""
    return (advantages.detach().reshape(-1, G).abs() > 1e-8).any(dim=1)


def _pad(t, length: int, left: bool, value):
    import torch.nn.functional as F

    extra = length - t.shape[1]
    if extra <= 0:
        return t
    return F.pad(t, (extra, 0) if left else (0, extra), value=value)


def replace_groups(out: dict, new: dict, slots: list[int], donors: list[int], G: int, pad_id: int) -> dict:
    """`out` with its groups at `slots` replaced by `new`'s groups at `donors` (same count), every
    per-row tensor re-padded to the longer of the two batches (prompts on the left, completions on
    the right, as TRL pads them)."""
    import torch

    rows_out = torch.cat([torch.arange(s * G, (s + 1) * G) for s in slots])
    rows_new = torch.cat([torch.arange(d * G, (d + 1) * G) for d in donors])
    merged = dict(out)
    n = out["completion_ids"].shape[0]
    for key, value in out.items():
        if key == "num_items_in_batch":
            continue
        other = new.get(key)
        if not isinstance(value, torch.Tensor) or other is None:
            raise ValueError(f"dynamic sampling cannot merge TRL's output {key!r}: a text-only batch is expected")
        if value.dim() == 1 and value.shape[0] == n:
            v = value.clone()
            v[rows_out] = other[rows_new].to(v.dtype)
        elif value.dim() == 2 and value.shape[0] == n:
            left = key.startswith("prompt_")
            fill = pad_id if key.endswith("_ids") else 0
            length = max(value.shape[1], other.shape[1])
            v, o = _pad(value, length, left, fill).clone(), _pad(other, length, left, fill)
            v[rows_out] = o[rows_new].to(v.dtype)
        else:
            raise ValueError(f"dynamic sampling cannot merge TRL's output {key!r} of shape {tuple(value.shape)}")
        merged[key] = v
    return merged


def fresh_inputs(dataset, n_groups: int, G: int, rng: np.random.Generator) -> list[dict]:
    """n_groups prompts drawn from the training set, each repeated G times (TRL's group layout)."""
    idx = rng.choice(len(dataset), size=n_groups, replace=len(dataset) < n_groups)
    return [dict(dataset[int(i)]) for i in idx for _ in range(G)]


def refill(trainer, inputs: list, out: dict, generate: Callable[[list], dict], cfg: DynamicSampling,
           step: int) -> tuple[dict, dict]:
    """Run extra rounds until every group of `out` is live or the bound is reached; returns the merged
    batch and what it cost: {"rounds", "dropped", "live_share", "extra_completions", "bound_reached"}.
    Whole groups per process are checked when the trainer is instrumented."""
    import torch

    acc = trainer.accelerator
    G = trainer.num_generations
    tok = getattr(trainer.processing_class, "tokenizer", trainer.processing_class)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    rng = np.random.default_rng([cfg.seed, step, acc.process_index])
    live = live_groups(out["advantages"], G)
    dropped, rounds, extra = 0, 0, 0
    while rounds < cfg.max_rounds:
        dead = (~live).nonzero().flatten().tolist()
        need = torch.tensor([float(len(dead))], device=acc.device)
        if acc.num_processes > 1:
            need = acc.reduce(need, reduction="sum")  # every rank decides alike: rounds are collectives
        if need.item() == 0:
            break
        rounds += 1
        new = generate(fresh_inputs(trainer.train_dataset, len(inputs) // G, G, rng))
        extra += len(inputs) * acc.num_processes
        donors = live_groups(new["advantages"], G).nonzero().flatten().tolist()
        k = min(len(dead), len(donors))
        if k:
            out = replace_groups(out, new, dead[:k], donors[:k], G, pad_id)
            live[dead[:k]] = True
            dropped += k
    if rounds:
        mask = out["completion_mask"] * out["tool_mask"] if "tool_mask" in out else out["completion_mask"]
        out["num_items_in_batch"] = acc.gather(mask.sum()).sum()  # as TRL counts the tokens of a batch
    totals = torch.tensor([float(dropped), float(live.sum()), float(len(live))], device=acc.device)
    if acc.num_processes > 1:
        totals = acc.reduce(totals, reduction="sum")  # the whole batch, over every process
    dropped, n_live, n = (float(x) for x in totals.tolist())
    share = n_live / n if n else float("nan")
    return out, {"rounds": rounds, "dropped": int(dropped), "live_share": share, "extra_completions": extra,
                 "bound_reached": bool(rounds == cfg.max_rounds and share < 1.0)}
