"""The shape of a completion, feature by feature, for diag.explain: length, numbers stated, repetition, a
stated final answer, the prompt's true answer stated among other text, truncation, a change of script.
Measured features are floats; present / absent ones (BINARY) are 0 / 1, NaN where they cannot be judged."""

from __future__ import annotations

import math
import re
import unicodedata

import numpy as np

FINAL = re.compile(r"answer is|\\boxed\{|####|final answer", re.I)
NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")


def scripts(text: str) -> set[str]:
    """Writing systems of a text's letters (LATIN, CYRILLIC, CJK, ...), from their Unicode names."""
    if text.isascii():  # the common case, without a Unicode lookup per character
        return {"LATIN"} if any(ch.isalpha() for ch in text) else set()
    out = set()
    for ch in text:
        if ch.isalpha():
            name = unicodedata.name(ch, "")
            out.add(name.split(" ")[0] if name else "?")
    return out


def _repetition(text: str) -> float:
    """1 - distinct share of word 3-grams (character 3-grams for texts under 12 words): 0 never repeats."""
    w = text.split()
    grams = list(zip(w, w[1:], w[2:])) if len(w) >= 12 else [text[i:i + 3] for i in range(max(0, len(text) - 2))]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def shapes(texts: list[str], lengths: np.ndarray, answers: list[str | None], cap: int | None,
           main_script: str | None) -> dict[str, np.ndarray]:
    """Per-completion shape features: measured (floats) and present/absent (bools)."""
    n_num = np.array([len(NUMBER.findall(t)) for t in texts], dtype=float)
    out = {
        "length": lengths.astype(float),
        "answers": n_num,
        "repetition": np.array([_repetition(t) for t in texts]),
        "final_answer": np.array([bool(FINAL.search(t)) for t in texts]),
        # NaN where the prompt's true answer is not known (no short true completion of it was recorded)
        "answer_not_alone": np.array([math.nan if a is None else float(a in t and t.strip() != a)
                                      for t, a in zip(texts, answers)]),
    }
    if cap:
        out["truncation"] = lengths >= cap
    if main_script:
        out["script_change"] = np.array([bool(scripts(t) - {main_script}) for t in texts])
    return out


BINARY = {"final_answer", "answer_not_alone", "truncation", "script_change"}  # present / absent (NaN: unknown)


SHAPE_WORDS = {
    "length": "length", "answers": "numbers stated", "repetition": "repeated 3-grams",
    "final_answer": "state a final answer ('The answer is', \\boxed{}, ####)",
    "answer_not_alone": "state the prompt's true answer among other text",
    "truncation": "are cut at the length cap", "script_change": "change script",
}
