"""Dynamic sampling on TRL: dead groups replaced by live ones from extra rounds, the bound kept, the
cost recorded; and the merge of two batches padded as TRL pads them."""

import polars as pl
import pytest
import torch

import diag
from diag.integrations.dynamic_sampling import live_groups, replace_groups
from training.config import from_dict


def test_replace_groups_repads_prompts_left_and_completions_right():
    G = 2
    out = {"prompt_ids": torch.tensor([[0, 5], [0, 5], [6, 7], [6, 7]]), "prompt_mask": torch.tensor([[0, 1]] * 2 + [[1, 1]] * 2),
           "completion_ids": torch.tensor([[1], [2], [3], [4]]), "completion_mask": torch.ones(4, 1, dtype=torch.long),
           "advantages": torch.tensor([0.0, 0.0, 1.0, -1.0]), "num_items_in_batch": torch.tensor(4)}
    new = {"prompt_ids": torch.tensor([[9, 9, 9]] * 2 + [[8, 8, 8]] * 2), "prompt_mask": torch.ones(4, 3, dtype=torch.long),
           "completion_ids": torch.tensor([[1, 1], [2, 0], [3, 3], [4, 4]]),
           "completion_mask": torch.tensor([[1, 1], [1, 0], [1, 1], [1, 1]]),
           "advantages": torch.tensor([0.5, -0.5, 0.0, 0.0]), "num_items_in_batch": torch.tensor(7)}
    assert live_groups(out["advantages"], G).tolist() == [False, True]
    m = replace_groups(out, new, slots=[0], donors=[0], G=G, pad_id=0)
    assert m["prompt_ids"].tolist() == [[9, 9, 9], [9, 9, 9], [0, 6, 7], [0, 6, 7]]  # left-padded
    assert m["prompt_mask"].tolist() == [[1, 1, 1], [1, 1, 1], [0, 1, 1], [0, 1, 1]]
    assert m["completion_ids"].tolist() == [[1, 1], [2, 0], [3, 0], [4, 0]]  # right-padded
    assert m["completion_mask"].tolist() == [[1, 1], [1, 0], [1, 0], [1, 0]]
    assert m["advantages"].tolist() == [0.5, -0.5, 1.0, -1.0]
    with pytest.raises(ValueError, match="cannot merge TRL's output 'pixel_values'"):
        replace_groups({**out, "pixel_values": torch.zeros(3, 3, 3)}, {**new, "pixel_values": torch.zeros(3, 3, 3)},
                       [0], [0], G, 0)


@pytest.mark.slow
@pytest.mark.xdist_group("trl")
def test_weak_base_trains_on_live_groups_only(tmp_path, cache_dir):
    from training.grpo import build_trainer

    cfg = from_dict({"name": "ds", "model": {"path": "base:weak"}, "task": {"name": "add2", "n_train": 400, "n_eval": 20},
                     "grpo": {"steps": 4, "num_generations": 4, "prompts_per_step": 4, "max_completion_length": 8,
                              "rewards": ["strict_correct"]},
                     "heldout": {"every": 4, "max_new_tokens": 8}, "monitor": {"console": False},
                     "remedy": {"dynamic_sampling": True, "max_rounds": 3}})
    trainer = build_trainer(cfg, str(tmp_path))
    trained = []
    inner = trainer._generate_and_score_completions

    def capture(inputs):  # what TRL receives to train on, after the refill
        out = inner(inputs)
        if trainer.model.training:
            trained.append(live_groups(out["advantages"], 4).float().mean().item())
        return out

    trainer._generate_and_score_completions = capture
    trainer.train()
    run = diag.open_run(tmp_path / "ds")
    assert run.meta["dynamic_sampling"] == {"max_rounds": 3}
    s = run.scalars.filter(pl.col("key").str.starts_with("diag/dynamic_"))
    per_step = {k: dict(zip(d["step"].to_list(), d["value"].to_list())) for (k,), d in s.group_by("key")}
    assert sorted(per_step["diag/dynamic_live_share"]) == [1, 2, 3, 4]
    # the live share recorded is the batch TRL trained on; every batch is all live or the bound was hit
    assert list(per_step["diag/dynamic_live_share"].values()) == pytest.approx(trained)
    for step, share in per_step["diag/dynamic_live_share"].items():
        assert share == 1.0 or (per_step["diag/dynamic_bound_reached"][step] == 1.0
                                and per_step["diag/dynamic_rounds"][step] == 3)
    # the weak base needs refills (most of its groups are all-fail), and every round is recorded
    rounds = sum(per_step["diag/dynamic_rounds"].values())
    assert rounds >= 1
    assert sum(per_step["diag/dynamic_extra_completions"].values()) == rounds * 16
    train_groups = run.groups.filter(pl.col("mode") == "train")
    assert train_groups.height == (4 + rounds) * 4
    # the signal view keeps the model's own first round per step: what the signal-gap detector judges
    from diag.summary import once_per_step

    first = once_per_step(run.steps.filter(pl.col("n_groups") > 0))
    assert first["step"].to_list() == [1, 2, 3, 4] and set(first["n_groups"]) == {4}
