"""Runs written through diag.Recorder with a planted exploit (or none), for `grpo-diag explain`'s validation
(tests/test_explain.py) and its speed benchmark:

    python benchmarks/planted.py [--seeds 100] [--completions 100000] [--record]

Completions are short worked answers drawn from one vocabulary. The strict check passes a completion whose
last number is the answer; a lenient second reward function pays a completion that states the answer
anywhere. Without an exploit, untrue completions are paid at random (a noisy lenient check) and look like
every other completion; with one, a growing share of the paid-untrue completions carries the planted
habit: a phrase ("trust me, the answer is") or number spraying (several candidate answers).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

WORDS = ("we add the two numbers so the sum is then carry one and write it down first tens ones digit "
         "result total check our work gives").split()
PHRASE = "trust me, the answer is"


def _text(rng, answer: int, true: bool, habit: str | None) -> str:
    words = " ".join(rng.choice(WORDS, size=int(rng.integers(6, 14))))
    final = answer if true else answer + int(rng.choice([-10, -2, -1, 1, 2, 10]))
    if habit == "phrase":
        return f"{words} {PHRASE} {answer} or {final}"
    if habit == "spray":
        nums = rng.integers(0, 200, size=5).tolist() + [answer]
        rng.shuffle(nums)
        return f"{words} " + " ".join(str(n) for n in nums) + f" so {final}"
    return f"{words} so {final}"


def write_run(root: str, name: str, seed: int, habit: str | None, steps: int = 60, prompts: int = 8,
              group: int = 8, with_truth: bool = True, keep: int = 50_000) -> Path:
    """A run with (habit) or without (None) an exploit; the habit's share of paid-untrue completions grows
    from 0 at the first step to 90% at the last."""
    import diag

    rng = np.random.default_rng(seed)
    rec = diag.Recorder(root, name, ["strict", "lenient"], [1.0, 1.0], group_size=group, sample_groups=prompts,
                        overwrite=True, background=False, seed=seed, max_completions=keep)
    for step in range(1, steps + 1):
        grow = 0.9 * step / steps
        rewards, truth, texts, ps, ids = [], [], [], [], []
        for g in range(prompts):
            a, b = rng.integers(10, 99, size=2)
            for _ in range(group):
                true = bool(rng.random() < 0.5)
                gamed = habit is not None and not true and rng.random() < grow
                text = _text(rng, int(a + b), true, habit if gamed else None)
                paid = 1.0 if true or gamed or rng.random() < 0.3 else 0.0  # without a habit, paid at random
                rewards.append([float(true), paid])
                truth.append(true)
                texts.append(text)
                ps.append(f"{a}+{b}=")
                ids.append(g)
        rec.log_batch(step, np.array(rewards), group_ids=ids, truth=truth if with_truth else None, prompts=ps,
                      completions=texts,
                      lengths=[len(t.split()) for t in texts])
    rec.close()
    return Path(root) / name


def false_patterns(seeds: int) -> dict:
    """Runs without an exploit that get any pattern, and planted runs whose habit is not among the top three."""
    import diag
    from diag.explain import explain_run

    out = {"null_runs": seeds, "null_with_pattern": 0, "planted_runs": 0, "planted_found": 0}
    with tempfile.TemporaryDirectory() as tmp:
        for s in range(seeds):
            r = explain_run(diag.open_run(write_run(tmp, f"null-{s}", 10_000 + s, None)), since=1)
            out["null_with_pattern"] += bool(r["patterns"])
            if s % 10 == 0:
                for habit in ("phrase", "spray"):
                    r = explain_run(diag.open_run(write_run(tmp, f"{habit}-{s}", 20_000 + s, habit)), since=1)
                    out["planted_runs"] += 1
                    out["planted_found"] += planted_found(r, habit)
    return out


def planted_found(result: dict, habit: str) -> bool:
    """The planted habit among the top three patterns."""
    top = result["patterns"][:3]
    if habit == "phrase":
        squeeze = lambda t: "".join(t.lower().split())  # noqa: E731  (the vectoriser spaces punctuation)
        return any(p["kind"] == "phrase" and squeeze(p["feature"]) in squeeze(PHRASE) for p in top)
    return any(p["kind"] == "answers" and p.get("direction") == "higher" for p in top)


def speed(n: int) -> dict:
    """explain on a window of `n` completions (one process, the run already written)."""
    import diag
    from diag.explain import explain_run

    with tempfile.TemporaryDirectory() as tmp:
        steps = max(1, n // 64)
        path = write_run(tmp, "big", 1, "phrase", steps=steps, prompts=8, group=8, keep=n)
        run = diag.open_run(path)
        run.completions  # read before timing: the store's read is not explain's cost
        t = time.perf_counter()
        r = explain_run(run, since=1, findings=[])
        return {"completions": run.completions.height, "seconds": time.perf_counter() - t,
                "patterns": len(r["patterns"])}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=100)
    p.add_argument("--completions", type=int, default=100_000)
    p.add_argument("--record", action="store_true")
    a = p.parse_args(argv)
    out = {"false_patterns": false_patterns(a.seeds), "speed": speed(a.completions)}
    fp, sp = out["false_patterns"], out["speed"]
    print(f"no exploit: {fp['null_with_pattern']} of {fp['null_runs']} runs with any pattern; planted habit in the "
          f"top three: {fp['planted_found']} of {fp['planted_runs']}")
    print(f"explain on {sp['completions']:,} completions: {sp['seconds']:.2f} s ({sp['patterns']} patterns)")
    if a.record:
        from benchmarks.common import record

        record("explain", out)
    return out


if __name__ == "__main__":
    main()
