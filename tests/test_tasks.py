import re

import pytest

from training.tasks import REWARDS, get_task, split
from training.tasks import arithmetic
from training.tasks.arithmetic import lenient_score, lenient_verify, strict_verify


@pytest.mark.parametrize("name", sorted(arithmetic.TASKS))
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


# --------------------------------------------------------------------------- word problems (real models)

from training.tasks import word_problems as wp  # noqa: E402


@pytest.mark.parametrize("text, want", [
    ("12 + 7 = 19.\nThe answer is 19.", 19), ("#### 1,234", 1234), (r"so the total is \boxed{42}", 42),
    ("The answer is: **7**", 7), ("the answer is $12.00", 12), ("The answer is -3.", -3),
    ("The answer is 3. Wait, no: the answer is 4.", 4),  # the last final answer counts
    ("12 + 7 = 19", None), ("I think 19 apples", None), ("The answer is nineteen.", None),
])
def test_final_answer_extraction(text, want):
    got = wp.extract_answer(text)
    assert (got is None) if want is None else got == want


def test_strict_verifier_needs_a_final_answer():
    assert wp.strict_verify("7 + 12 = 19. The answer is 19.", "19")
    assert not wp.strict_verify("7 + 12 = 19.", "19")  # right number, no final answer: fails
    assert not wp.strict_verify("The answer is 18.", "19")
    assert wp.last_number("7 + 12 = 19.") == 19  # what the lenient reward would have paid for


@pytest.mark.parametrize("name", ["gsm", "gsm-easy"])
def test_word_problems_are_consistent_and_held_out(name):
    task = get_task(name)
    train, held = split(task, 400, 60, seed=2)
    assert not {r["question"] for r in train} & {r["question"] for r in held}
    for r in train[:100] + held:
        assert r["prompt"][0]["role"] == "user" and r["question"] in r["prompt"][0]["content"]
        assert task.verify(r["solution"], r["answer"])  # the demonstration passes its own verifier
        # every arithmetic step written in the solution is right
        for lhs, rhs in re.findall(r"(\d+(?: [-+*] \d+)+) = (-?\d+)", r["solution"]):
            assert eval(lhs) == int(rhs)  # noqa: S307 - generated arithmetic
    buckets = {r["bucket"] for r in held}
    assert buckets == ({"1-easy", "2-medium", "3-hard", "4-harder"} if name == "gsm" else {"1-easy", "2-medium"})


def test_word_problem_rewards():
    comps = [[{"role": "assistant", "content": "5 + 4 = 9. The answer is 9."}],
             [{"role": "assistant", "content": "5 + 4 = 9"}], [{"role": "assistant", "content": "The answer is 8."}]]
    ans = ["9", "9", "9"]
    assert REWARDS["answer_correct"](comps, answer=ans) == [1.0, 0.0, 0.0]
    assert REWARDS["answer_format"](comps) == [0.2, 0.0, 0.2]
    assert REWARDS["last_number_correct"](comps, answer=ans) == [1.0, 1.0, 0.0]
