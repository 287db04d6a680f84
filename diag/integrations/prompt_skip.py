"""Skipping dead prompts before they are generated (GRESO's pre-rollout filter) for TRL's GRPOTrainer.

A prompt whose last `after` groups had no learning signal (all advantages zero) is very likely dead
again, so generating G completions for it is mostly wasted. Before each training generation, such a
prompt is skipped with probability `p` (the rest of the time it is visited anyway, so a prompt the model
has learned to half-solve can come back) and its group slot gets a fresh prompt from the training set
that is not known dead. What was skipped is recorded per step (`diag/skip_*` scalars).

Every process keeps the same history: it is fed from TRL's gathered logs (the prompts and advantages of
every process), so a prompt dead on one rank is known dead on all of them without a collective.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from diag.integrations.rows import sent_prompt
from diag.recorder import as_text, prompt_hash


@dataclass
class SkipDead:
    after: int = 2  # consecutive dead visits before a prompt may be skipped
    p: float = 0.8  # probability of skipping a prompt that is dead by that rule, at each of its visits
    seed: int = 0
    tries: int = 32  # draws from the training set to find a replacement that is not known dead

    def __post_init__(self):
        if self.after < 1:
            raise ValueError("SkipDead.after must be >= 1 (dead visits in a row before a prompt may be skipped)")
        if not 0.0 <= self.p <= 1.0:
            raise ValueError("SkipDead.p must be in [0, 1] (the probability of skipping a dead prompt)")


@dataclass
class DeadPrompts:
    """Per prompt (keyed as the groups table keys it), its dead streak: visits in a row without signal."""

    cfg: SkipDead
    streak: dict[str, int] = field(default_factory=dict)

    def observe(self, prompts: list, advantages, G: int) -> None:
        """One generation batch, gathered over processes: G rows per group, in TRL's group order."""
        adv = np.abs(np.asarray(advantages, dtype=float)).reshape(-1, G)
        for g, row in enumerate(adv):
            key = prompt_hash(as_text(prompts[g * G]))
            self.streak[key] = self.streak.get(key, 0) + 1 if not (row > 1e-8).any() else 0

    @staticmethod
    def key(row: dict) -> str:
        """A dataset row's prompt key as the groups table records it: with its image(s) inserted the way
        TRL inserts them, so an image prompt is known by its pixels too."""
        return prompt_hash(as_text(sent_prompt(row)))

    def is_dead(self, key: str) -> bool:
        return self.streak.get(key, 0) >= self.cfg.after

    def known_dead(self) -> int:
        return sum(1 for s in self.streak.values() if s >= self.cfg.after)

    def filter(self, inputs: list[dict], dataset, G: int, rng: np.random.Generator) -> tuple[list[dict], dict]:
        """`inputs` (whole groups of G identical prompts) with dead prompts skipped by the rule; returns
        the new inputs and {"skipped", "unreplaced"} (a dead prompt kept when no live replacement was found)."""
        out = list(inputs)
        skipped = unreplaced = 0
        for start in range(0, len(inputs) - G + 1, G):
            if not self.is_dead(self.key(inputs[start])) or rng.random() >= self.cfg.p:
                continue
            repl = self._replacement(dataset, rng)
            if repl is None:
                unreplaced += 1
                continue
            out[start: start + G] = [dict(repl) for _ in range(G)]
            skipped += 1
        return out, {"skipped": skipped, "unreplaced": unreplaced}

    def _replacement(self, dataset, rng: np.random.Generator) -> dict | None:
        for i in rng.integers(0, len(dataset), size=self.cfg.tries):
            row = dataset[int(i)]
            if not self.is_dead(self.key(row)):
                return row
        return None
