"""GSM8K-style word problems for real instruct models: templated stories, numeric answers, a worked
solution per item (the SFT demonstrations), difficulty buckets, chat prompts and a strict verifier.

The verifier reads the final answer the way evaluation pipelines do: the last `#### N`, `\\boxed{N}` or
"The answer is N" in the completion (thousands separators, a currency sign and a trailing ".0"
allowed); a completion without such a marker fails even when the right number appears in it, since
"the last number in the text" rewards a model for guessing in prose.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Callable

INSTRUCTION = "Solve the problem step by step. End with a final line of the form 'The answer is N.' where N is a number."

_NAMES = ("Ava", "Ben", "Chloe", "Dan", "Emma", "Finn", "Grace", "Hugo", "Iris", "Jack", "Lena", "Omar",
          "Maya", "Noah", "Priya", "Sam", "Tara", "Yuki", "Zoe", "Leo")
_THINGS = ("apples", "marbles", "stickers", "pencils", "cookies", "stamps", "books", "shells", "cards", "coins")

_NUM = r"-?\$?\d[\d,]*(?:\.\d+)?"
# The final-answer forms real pipelines extract (GSM8K's '####', MATH's \boxed{}, the instruct phrasing).
_MARKERS = re.compile(
    rf"####\s*(?P<hash>{_NUM})|\\boxed\{{\s*(?P<boxed>{_NUM})\s*\}}|answer is:?\s*\**\s*(?P<phrase>{_NUM})",
    re.IGNORECASE,
)
_ANY_NUMBER = re.compile(_NUM)


def _number(text: str) -> float | None:
    t = text.replace(",", "").replace("$", "")
    try:
        return float(t)
    except ValueError:
        return None


def extract_answer(completion: str) -> float | None:
    """The number after the last final-answer marker, or None when the completion has none."""
    last = None
    for m in _MARKERS.finditer(completion):
        last = m
    if last is None:
        return None
    return _number(next(g for g in last.groups() if g is not None))


def strict_verify(completion: str, answer: str) -> bool:
    got = extract_answer(completion)
    return got is not None and got == float(answer)


def has_final_answer(completion: str) -> bool:
    return extract_answer(completion) is not None


def last_number(completion: str) -> float | None:
    """The last number anywhere: the lenient fallback many reward functions use."""
    nums = _ANY_NUMBER.findall(completion)
    return _number(nums[-1]) if nums else None


# --------------------------------------------------------------------------- the stories
# Each maker returns (question, worked solution steps, answer); WordProblems.sample appends the
# final answer line to the steps.

Story = tuple[str, list[str], int]


def _one_step_small(rng: random.Random) -> Story:
    n, t = rng.choice(_NAMES), rng.choice(_THINGS)
    a, b = rng.randint(2, 20), rng.randint(2, 20)
    if rng.random() < 0.5:
        return (f"{n} has {a} {t}. {n} finds {b} more {t}. How many {t} does {n} have now?",
                [f"{n} starts with {a} {t} and finds {b} more.", f"{a} + {b} = {a + b}."], a + b)
    a, b = max(a, b) + rng.randint(1, 9), min(a, b)
    return (f"{n} has {a} {t} and gives {b} of them away. How many {t} does {n} have left?",
            [f"{n} starts with {a} {t} and gives away {b}.", f"{a} - {b} = {a - b}."], a - b)


def _one_step_large(rng: random.Random) -> Story:
    n, t = rng.choice(_NAMES), rng.choice(_THINGS)
    if rng.random() < 0.5:
        a, b = rng.randint(3, 12), rng.randint(3, 12)
        return (f"{n} packs {a} boxes with {b} {t} in each box. How many {t} are in the boxes?",
                [f"There are {a} boxes of {b} {t}.", f"{a} * {b} = {a * b}."], a * b)
    a, b = rng.randint(20, 99), rng.randint(20, 99)
    return (f"A shop sold {a} {t} in the morning and {b} {t} in the afternoon. How many {t} did it sell?",
            [f"The shop sold {a} and then {b} {t}.", f"{a} + {b} = {a + b}."], a + b)


def _two_step(rng: random.Random) -> Story:
    n, t = rng.choice(_NAMES), rng.choice(_THINGS)
    a, b, c = rng.randint(20, 60), rng.randint(2, 19), rng.randint(2, 30)
    return (f"{n} had {a} {t}. {n} gave {b} to a friend and then bought {c} more. How many {t} does {n} have now?",
            [f"After giving {b} away, {n} has {a} - {b} = {a - b} {t}.",
             f"After buying {c} more, {n} has {a - b} + {c} = {a - b + c} {t}."], a - b + c)


def _three_step(rng: random.Random) -> Story:
    n, t = rng.choice(_NAMES), rng.choice(_THINGS)
    a, b = rng.randint(3, 9), rng.randint(4, 12)
    c = rng.randint(1, a * b - 1)
    d = rng.randint(2, 20)
    total = a * b
    return (f"{n} buys {a} bags with {b} {t} in each bag, uses {c} of them, and then gets {d} more. "
            f"How many {t} does {n} have?",
            [f"{n} buys {a} * {b} = {total} {t}.", f"After using {c}, {n} has {total} - {c} = {total - c}.",
             f"After getting {d} more, {n} has {total - c} + {d} = {total - c + d}."], total - c + d)


BUCKETS: dict[str, Callable[[random.Random], Story]] = {
    "1-easy": _one_step_small, "2-medium": _one_step_large, "3-hard": _two_step, "4-harder": _three_step,
}


def chat_prompt(question: str) -> list[dict]:
    return [{"role": "user", "content": f"{question}\n{INSTRUCTION}"}]


@dataclass(frozen=True)
class WordProblems:
    """The word-problem task: rows {"prompt": chat messages, "question", "answer", "solution", "bucket"}."""

    name: str = "gsm"
    weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
    space: int = 1_000_000

    @property
    def bucket(self) -> str:
        return "mixed"

    def sample(self, rng: random.Random) -> dict:
        bucket = rng.choices(list(BUCKETS), weights=self.weights)[0]
        question, steps, answer = BUCKETS[bucket](rng)
        solution = " ".join(steps) + f"\nThe answer is {answer}."
        return {"prompt": chat_prompt(question), "question": question, "answer": str(answer),
                "solution": solution, "bucket": bucket}

    def verify(self, completion: str, answer: str) -> bool:
        return strict_verify(completion, answer)


TASKS = {"gsm": WordProblems(), "gsm-easy": WordProblems("gsm-easy", (3.0, 1.0, 0.0, 0.0))}
