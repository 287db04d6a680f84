"""Skipping dead prompts before generation (GRESO-style): the history every process keeps, the rule, and a
weak-base run in which no prompt known dead is generated while a live replacement exists."""

import numpy as np
import polars as pl
import pytest

import diag
from diag.integrations.prompt_skip import DeadPrompts, SkipDead
from diag import prompts
from diag.recorder import as_text, prompt_hash
from training.config import ConfigError, from_dict


def _rows(*prompts):
    return [{"prompt": p, "answer": "1"} for p in prompts]


def test_streaks_follow_the_advantages_of_each_group():
    d = DeadPrompts(SkipDead(after=2, p=1.0))
    d.observe(["a", "a", "b", "b"], [0, 0, 0.5, -0.5], G=2)  # a dead, b live
    d.observe(["a", "a", "b", "b"], [0, 0, 0, 0], G=2)
    key = lambda p: prompt_hash(as_text(p))  # noqa: E731
    assert d.streak == {key("a"): 2, key("b"): 1}
    assert d.is_dead(key("a")) and not d.is_dead(key("b")) and d.known_dead() == 1
    d.observe(["a", "a"], [1e-3, -1e-3], G=2)  # a revived: its streak starts over
    assert d.streak[key("a")] == 0 and d.known_dead() == 0


def test_filter_replaces_whole_groups_of_dead_prompts_only():
    d = DeadPrompts(SkipDead(after=1, p=1.0))
    d.observe(["dead", "dead"], [0, 0], G=2)
    inputs = _rows("dead", "dead", "live", "live")
    out, stats = d.filter(inputs, _rows("dead", "fresh"), G=2, rng=np.random.default_rng(0))
    assert [r["prompt"] for r in out] == ["fresh", "fresh", "live", "live"]
    assert stats == {"skipped": 1, "unreplaced": 0}
    assert inputs[0]["prompt"] == "dead"  # the caller's list is left as it was
    # nothing but dead prompts to draw from: the prompt is kept, and counted
    out, stats = d.filter(inputs, _rows("dead"), G=2, rng=np.random.default_rng(0))
    assert [r["prompt"] for r in out] == ["dead", "dead", "live", "live"] and stats == {"skipped": 0, "unreplaced": 1}
    # p = 0 never skips
    never = DeadPrompts(SkipDead(after=1, p=0.0), streak=dict(d.streak))
    assert never.filter(inputs, _rows("fresh"), 2, np.random.default_rng(0))[1]["skipped"] == 0


def test_config_checks():
    with pytest.raises(ConfigError, match="skip_prob"):
        from_dict({"name": "x", "remedy": {"skip_dead": True, "skip_prob": 1.5}})
    with pytest.raises(ValueError, match="after must be >= 1"):
        SkipDead(after=0)


def _streak_before(hist: pl.DataFrame) -> list[tuple[int, str, int]]:
    """(step, prompt, dead visits in a row at earlier steps) for every generated visit."""
    out = []
    for (key,), h in hist.sort("step", "visit").group_by("prompt_hash"):
        steps, dead = h["step"].to_list(), h["dead"].to_list()
        for i, s in enumerate(steps):
            streak = 0
            for j in range(i - 1, -1, -1):
                if steps[j] >= s:
                    continue
                if not dead[j]:
                    break
                streak += 1
            out.append((s, key, streak))
    return out


@pytest.mark.slow
@pytest.mark.xdist_group("trl")
def test_weak_base_never_generates_a_prompt_known_dead(tmp_path, cache_dir):
    from training.grpo import build_trainer

    # 16 prompts, 4 per step: every prompt comes back each 4 steps, so the rule has visits to act on
    cfg = from_dict({"name": "skip", "model": {"path": "base:weak"}, "task": {"name": "add2", "n_train": 16, "n_eval": 20},
                     "grpo": {"steps": 12, "num_generations": 4, "prompts_per_step": 4, "max_completion_length": 8,
                              "rewards": ["strict_correct"]},
                     "heldout": {"every": 12, "max_new_tokens": 8}, "monitor": {"console": False},
                     "remedy": {"skip_dead": True, "skip_after": 1, "skip_prob": 1.0}})
    build_trainer(cfg, str(tmp_path)).train()
    run = diag.open_run(tmp_path / "skip")
    assert run.meta["skip_dead"] == {"after": 1, "p": 1.0}
    s = run.scalars.filter(pl.col("key").str.starts_with("diag/skip_"))
    per = {k: dict(zip(d["step"].to_list(), d["value"].to_list())) for (k,), d in s.group_by("key")}
    assert sorted(per["diag/skip_skipped"]) == list(range(1, 13))
    skipped, unreplaced = sum(per["diag/skip_skipped"].values()), sum(per["diag/skip_unreplaced"].values())
    # the weak base fails most prompts, so from the second epoch on there are dead prompts to skip
    assert skipped >= 1
    assert sum(per["diag/skip_completions_saved"].values()) == skipped * 4
    # every batch still has its 4 groups, and none of them is a prompt dead at its earlier visit (p = 1),
    # unless no live replacement could be drawn (counted as unreplaced)
    steps = run.steps
    assert set(steps["n_groups"]) == {4}
    generated_dead = sum(1 for _, _, streak in _streak_before(prompts.history(run.groups)) if streak >= 1)
    assert generated_dead <= unreplaced


def test_what_the_remedy_skipped_is_summed_for_the_prompts_page(tmp_path):
    from dashboards import query
    from dashboards.pages import prompts as page

    rec = diag.Recorder(str(tmp_path), "r", ["r"], group_size=2, flush_secs=0)
    rec.log_batch(1, np.array([1.0, 0.0, 0.0, 0.0]), prompts=["a", "a", "b", "b"])
    for step, skipped in ((1, 0), (2, 2)):
        rec.log_scalars(step, {"diag/skip_skipped": skipped, "diag/skip_unreplaced": 1,
                               "diag/skip_completions_saved": 2 * skipped, "diag/skip_known_dead": step})
    rec.close()
    from diag.prompts import skipped_live

    assert skipped_live(diag.open_run(tmp_path / "r").scalars) == {
        "skipped": 2, "unreplaced": 2, "completions_saved": 4, "known_dead_at_end": 2}
    text = str(page.render(query.Store(tmp_path), "r", 2)[0])
    assert "skipped dead prompts while training: 2 group(s)" in text


def test_an_image_prompt_is_known_by_its_pixels():
    """TRL logs image prompts with the image inserted; the key of a dataset row must match that record."""
    from PIL import Image
    from trl.data_utils import prepare_multimodal_messages

    chat = [{"role": "user", "content": "Add the numbers in the image."}]
    a, b = Image.new("RGB", (8, 8), "white"), Image.new("RGB", (8, 8), "black")
    d = DeadPrompts(SkipDead(after=1, p=1.0))
    d.observe([prepare_multimodal_messages(chat, images=[a])] * 2, [0, 0], G=2)  # as TRL's logs hold it
    assert d.is_dead(d.key({"prompt": chat, "image": a})) and not d.is_dead(d.key({"prompt": chat, "image": b}))
