"""Items per held-out evaluation where a log does not say: one number, or one per held-out set.

The size turns a held-out accuracy into a measurement with a standard error; without it a fall is
judged from the spread between evaluations, a weaker test.
"""

from __future__ import annotations

# Items per held-out evaluation where a log does not say: one number for every set, or per set
# ({"eval_aime24": 240, None: 4000}: None is the default for the sets not named).
EvalSize = int | dict


def size_of(eval_size: EvalSize | None, eval_set: str | None) -> int | None:
    """The item count `eval_size` gives the set `eval_set`, or None."""
    if isinstance(eval_size, dict):
        n = eval_size.get(eval_set, eval_size.get(None))
        return None if n is None else int(n)
    return None if eval_size is None else int(eval_size)


def parse_eval_size(text: str) -> EvalSize:
    """`4000`, or `eval_math500=4000,eval_aime24=240`, or both (`4000,eval_aime24=240`: 4000 for the rest)."""
    out: dict = {}
    for part in (x.strip() for x in str(text).split(",") if x.strip()):
        name, _, num = part.rpartition("=")
        try:
            n = int(num)
        except ValueError as e:
            raise ValueError(f"--eval-size {text!r}: {part!r} is not N or SET=N (e.g. 4000 or eval_aime24=240)") from e
        if n < 1:
            raise ValueError(f"--eval-size {text!r}: {part!r}: an eval size is at least 1 item")
        out[name.strip() or None] = n
    if not out:
        raise ValueError(f"--eval-size {text!r}: give N or SET=N (e.g. 4000 or eval_aime24=240)")
    return out[None] if list(out) == [None] else out
