"""Reward functions in TRL's signature: f(prompts, completions, **dataset_columns) -> list[float | None].

TRL names each function by its `__name__`; the names below are what the run store records.
"""

from __future__ import annotations

from training.tasks import word_problems as wp
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


def answer_correct(completions, answer, **_) -> list[float]:
    """Word problems: 1.0 when the final answer ('The answer is N', '#### N', \\boxed{N}) equals the
    answer: the strict verifier as a reward."""
    return [float(wp.strict_verify(_text(c), a)) for c, a in zip(completions, answer)]


def answer_format(completions, **_) -> list[float]:
    """Word problems: 0.2 when the completion states a final answer in a form the verifier reads."""
    return [0.2 if wp.has_final_answer(_text(c)) else 0.0 for c in completions]


def last_number_correct(completions, answer, **_) -> list[float]:
    """Word problems: 1.0 when the last number anywhere equals the answer: the lenient check that
    pays for a guess in prose, with no final answer stated."""
    return [float(wp.last_number(_text(c)) == float(a)) for c, a in zip(completions, answer)]


REWARDS = {f.__name__: f for f in (strict_correct, lenient_correct, digits_format,
                                   answer_correct, answer_format, last_number_correct)}


def get_reward(name: str):
    if name not in REWARDS:
        raise KeyError(f"unknown reward function {name!r}; choose one of {sorted(REWARDS)}")
    return REWARDS[name]
