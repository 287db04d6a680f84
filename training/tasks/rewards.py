"""Reward functions in TRL's signature: f(prompts, completions, **dataset_columns) -> list[float | None].

TRL names each function by its `__name__`; the names below are what the run store records.
"""

from __future__ import annotations

from training.tasks.arithmetic import lenient_score, strict_verify


def _text(c) -> str:
    # Conversational datasets hand over [{"role": "assistant", "content": ...}].
    if isinstance(c, list):
        return "".join(m.get("content", "") for m in c if isinstance(m, dict))
    return c


def strict_correct(completions, answer, **_) -> list[float]:
    """1.0 when the completion is exactly the answer: the honest reward."""
    return [float(strict_verify(_text(c), a)) for c, a in zip(completions, answer)]


def lenient_correct(completions, answer, **_) -> list[float]:
    """1.0 when the answer appears anywhere, partial credit for its digits otherwise: a flawed verifier
    that pays for junk after the answer (see arithmetic.lenient_score)."""
    return [lenient_score(_text(c), a) for c, a in zip(completions, answer)]


def digits_format(completions, **_) -> list[float]:
    """0.2 when the completion is a bare number: a small format bonus."""
    out = []
    for c in completions:
        t = _text(c).strip()
        out.append(0.2 if t.lstrip("-").isdigit() else 0.0)
    return out


REWARDS = {f.__name__: f for f in (strict_correct, lenient_correct, digits_format)}


def get_reward(name: str):
    if name not in REWARDS:
        raise KeyError(f"unknown reward function {name!r}; choose one of {sorted(REWARDS)}")
    return REWARDS[name]
