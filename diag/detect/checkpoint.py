"""Where to stop: the best evaluation by held-out accuracy versus by training reward, when they differ
(information beside every verdict: a checkpoint picked by reward on a decoupled run is the wrong one)."""

from __future__ import annotations

from diag.detect.align import Aligned
from diag.detect.base import Finding
from diag.summary import best_checkpoints


def best_checkpoint(a: Aligned, min_gap: float = 0.0) -> Finding | None:
    """Best evaluation step by held-out accuracy versus by training reward, when they differ."""
    best = best_checkpoints(a) if len(a) >= 2 else None
    if best is None or best["by_reward"] is None:
        return None
    ba, br = best["by_accuracy"], best["by_reward"]
    if ba["step"] == br["step"] or ba["accuracy"] - br["accuracy"] <= min_gap:
        return None
    msg = (f"Best checkpoint by held-out accuracy is step {ba['step']} ({ba['accuracy']:.3f}); by training reward "
           f"it is step {br['step']} (reward {br['reward']:.3f}, held-out {br['accuracy']:.3f}, "
           f"{ba['accuracy'] - br['accuracy']:.3f} lower). Pick checkpoints by held-out accuracy.")
    return Finding(kind="best_checkpoint", severity="info", step=int(a.steps[-1]), onset=ba["step"],
                   window_start=int(a.steps[0]), window_end=int(a.steps[-1]), message=msg,
                   evidence={"best_by_accuracy": ba["step"], "accuracy_at_best": ba["accuracy"],
                             "best_by_reward": br["step"], "accuracy_at_reward_best": br["accuracy"],
                             "reward_at_reward_best": br["reward"]})
