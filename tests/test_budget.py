"""Runs compared at equal cost (diag.budget): tokens generated per evaluation, accuracy at the budgets
every run reached, the effective batch actually trained on, the remedy a run used."""

import numpy as np
import pytest

import diag
from diag import budget


def _run(root, name, length, accs, meta=None, live_share=None):
    rec = diag.Recorder(str(root), name, ["r"], group_size=4, flush_secs=0, meta=meta or {})
    rewards = np.array([1.0, 0, 0, 0] * 2 + [0.0] * 8)  # 2 of 4 groups mixed: effective batch 8 of 16
    rec.log_eval(0, "heldout", [True] * int(accs[0] * 10) + [False] * (10 - int(accs[0] * 10)))
    for s in range(1, 11):
        rec.log_batch(s, rewards, lengths=np.full(16, length))
        if live_share is not None:
            rec.log_scalars(s, {"diag/dynamic_live_share": live_share})
        if s % 5 == 0:
            k = int(round(accs[s // 5] * 10))
            rec.log_eval(s, "heldout", [True] * k + [False] * (10 - k))
    rec.close()
    return diag.open_run(root / name)


def test_accuracy_at_equal_tokens_and_the_trained_effective_batch(tmp_path):
    a = _run(tmp_path, "a", 5, [0.1, 0.2, 0.3])
    b = _run(tmp_path, "b", 10, [0.1, 0.5, 0.6], meta={"dynamic_sampling": {"max_rounds": 3}}, live_share=1.0)
    sp = budget.spend(b)
    assert sp["step"].to_list() == [0, 5, 10] and sp["tokens"].to_list() == [0, 800, 1600]
    assert (sp["seconds"].diff().drop_nulls() >= 0).all()
    rows = {r["run"]: r for r in budget.compare([a, b])}
    assert rows["a"]["token_budget"] == rows["b"]["token_budget"] == 800
    # a spent its 800 tokens by step 10 (0.3); b had spent them by step 5 (0.5)
    assert rows["a"]["accuracy_at_tokens"] == pytest.approx(0.3)
    assert rows["b"]["accuracy_at_tokens"] == pytest.approx(0.5)
    assert rows["a"]["remedy"] == "plain GRPO" and rows["b"]["remedy"] == "dynamic sampling"
    # the batch trained on: 8 of 16 completions in mixed groups as generated; all 16 after a full refill
    assert rows["a"]["effective_batch"] == 8 and rows["b"]["effective_batch"] == 16
    assert rows["a"]["generated_completions"] == 160 and rows["a"]["accuracy_end"] == pytest.approx(0.3)
    assert budget.at(sp, "tokens", -1) is None  # nothing within a budget below the first evaluation


def test_a_run_in_phases_is_labelled_by_its_remedy(tmp_path):
    r = _run(tmp_path, "f", 5, [0.0, 0.1, 0.2], meta={"phases": [{"phase": "grpo", "start": 1, "end": 5},
                                                                 {"phase": "sft", "start": 6, "end": 10}]})
    assert budget.remedy(r) == "SFT fallback"
