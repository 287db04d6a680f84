"""The best model by held-out accuracy, kept as it is reached: a run stopped for a deceptive reward
(or crashed) still has it, in runs/<name>/best-checkpoint."""

from __future__ import annotations

import shutil


def save_best(recorder, model, tok, step: int, acc: float) -> None:
    """Atomically replace runs/<name>/best-checkpoint: a crash mid-save keeps the previous best."""
    dest = recorder.path / "best-checkpoint"
    tmp = recorder.path / ".best-checkpoint.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    old = recorder.path / ".best-checkpoint.old"
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    recorder.update_meta(best_checkpoint={"step": step, "accuracy": acc, "path": str(dest)})
