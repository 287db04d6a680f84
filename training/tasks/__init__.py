"""Verifiable tasks: prompt generators with strict verifiers, and the reward functions built on them.

Each task yields rows {"prompt", "answer", "bucket"} (word problems add "question" and a worked
"solution", the SFT demonstration); the held-out split is drawn first from its own
seed and removed from the training pool, so held-out accuracy measures generalisation, not recall.
"""

from training.tasks import arithmetic, visual, word_problems
from training.tasks.arithmetic import Task, row_key, split
from training.tasks.rewards import REWARDS, get_reward

__all__ = ["TASKS", "Task", "get_task", "split", "row_key", "REWARDS", "get_reward", "greedy_eval", "heldout_sets"]

# Bare-expression tasks for the embedded character-level models; chat word problems for real models; numbers
# drawn in images (and their text twins) for vision-language models.
TASKS = {**arithmetic.TASKS, **word_problems.TASKS, **visual.TASKS}


def get_task(name: str):
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    return TASKS[name]


def greedy_eval(model, tokenizer, task, rows: list[dict], max_new_tokens: int) -> tuple[list[str], list[bool]]:
    """Greedy completions of the rows' prompts and the strict verdict on each: the one held-out
    evaluation the SFT runs, the demo's base check and the base builder share."""
    from diag.integrations.trl import generate

    outs = generate(model, tokenizer, rows, max_new_tokens)
    return outs, [task.verify(o, r["answer"]) for o, r in zip(outs, rows)]


def heldout_sets(held: list[dict], also: list[str], task_cfg) -> list[tuple[str, object, list[dict]]]:
    """(name, task whose verifier judges it, rows): the training task's held-out set ("heldout") and one
    per task in `also`: the same items in the other modality when both are visual twins, else that task's
    own held-out split (`task_cfg`: the run's [task] table)."""
    sets = [("heldout", get_task(task_cfg.name), held)]
    for name in also:
        other = get_task(name)
        if isinstance(other, visual.VisualAdd) and all("modality" in r for r in held):
            rows = [r if r["modality"] == other.modality else visual.twin(r) for r in held]
        else:
            rows = split(other, task_cfg.n_train, task_cfg.n_eval, seed=task_cfg.seed)[1]
        sets.append((name, other, rows))
    return sets
