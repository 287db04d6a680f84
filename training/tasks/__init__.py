"""Verifiable tasks: prompt generators with strict verifiers, and the reward functions built on them.

Each task yields rows {"prompt", "answer", "bucket"}; the held-out split is drawn first from its own
seed and removed from the training pool, so held-out accuracy measures generalisation, not recall.
"""

from training.tasks.arithmetic import TASKS, Task, get_task, split
from training.tasks.rewards import REWARDS, get_reward

__all__ = ["TASKS", "Task", "get_task", "split", "REWARDS", "get_reward"]
