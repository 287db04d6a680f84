import random

import pytest

from training.tasks import REWARDS, TASKS, get_task, split
from training.tasks.arithmetic import lenient_score, lenient_verify, strict_verify


@pytest.mark.parametrize("name", sorted(TASKS))
def test_answers_are_correct_and_split_is_disjoint(name):
    task = get_task(name)
    train, held = split(task, 300, 50, seed=1)
    assert train and held
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in held}
    for r in train[:50] + held:
        expr = r["prompt"].rstrip("=")
        assert str(eval(expr)) == r["answer"]  # noqa: S307 - generated arithmetic
        assert task.verify(r["answer"], r["answer"])


def test_split_is_deterministic():
    a = split(get_task("add2"), 100, 20, seed=3)
    b = split(get_task("add2"), 100, 20, seed=3)
    assert a == b


def test_ladder_has_buckets():
    _, held = split(get_task("ladder"), 10, 400, seed=0)
    assert {"1-easy", "2-medium", "3-harder", "4-hard"} <= {r["bucket"] for r in held}


def test_verifiers():
    assert strict_verify(" 42 ", "42") and not strict_verify("421", "42")
    assert lenient_verify("421", "42") and not lenient_verify("4 2", "42")


def test_rewards_in_trl_signature():
    c = ["42", "4217", " 42", [{"role": "assistant", "content": "42"}]]
    a = ["42"] * 4
    assert REWARDS["strict_correct"](prompts=[""] * 4, completions=c, answer=a) == [1.0, 0.0, 1.0, 1.0]
    assert REWARDS["lenient_correct"](prompts=[""] * 4, completions=c, answer=a) == [1.0, 1.0, 1.0, 1.0]
    # partial credit for the answer's digits when it is not there whole: spraying digits pays
    assert lenient_score("24", "42") == 0.5 and lenient_score("4", "42") == 0.25 and lenient_score("9", "42") == 0.0
    assert lenient_score("0124", "42") > lenient_score("01", "42")
    assert REWARDS["digits_format"](completions=["12", "x1", "-3", " 7 "]) == [0.2, 0.0, 0.2, 0.2]


def test_unknown_names():
    with pytest.raises(KeyError, match="unknown task"):
        get_task("nope")
