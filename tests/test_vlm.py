"""Vision-language runs: the tiny Qwen2-VL default, images through the processor in held-out evaluation,
prompts told apart by their images, thumbnails stored once, several held-out sets, a VLM loaded by path."""

import polars as pl
import pytest
import torch

import diag
from diag.integrations.trl import encode, generate
from diag.recorder import IMAGE_REF, as_text
from training.tasks import get_task, split, visual


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    from training.vlm import load_vlm, save_tiny_vlm

    path = save_tiny_vlm(tmp_path_factory.mktemp("vlm") / "tiny-vlm")
    model, proc = load_vlm(path)  # by path, as a user's checkpoint folder
    return path, model, proc


def test_heldout_logits_depend_on_the_image(tiny_vlm):
    _, model, proc = tiny_vlm
    a, b = visual.item(3, 4, "1-easy", "image"), visual.item(8, 1, "1-easy", "image")
    assert a["prompt"] == b["prompt"]  # the same text: only the pixels differ
    enc = encode(proc, [a, b])
    assert "pixel_values" in enc and enc["image_grid_thw"].shape == (2, 3)
    with torch.no_grad():
        logits = model(**enc).logits[:, -1]
    assert (logits[0] - logits[1]).abs().max() > 1e-6
    # a tokenizer alone cannot carry the image: refused, not silently blind
    with pytest.raises(ValueError, match="processor"):
        encode(proc.tokenizer, [a])
    assert len(generate(model, proc, [a, b], max_new_tokens=3)) == 2


def test_text_twins_and_prompt_keys():
    task = get_task("digits-image")
    train, held = split(task, 200, 20, seed=0)
    assert all("image" in r for r in held) and not {r["question"] for r in held} & {r["question"] for r in train}
    t = visual.twin(held[0])
    assert t["answer"] == held[0]["answer"] and "image" not in t and held[0]["question"].split()[0] in t["prompt"][0]["content"]
    assert {r["bucket"] for r in held} <= {b for b, _, _ in visual.BUCKETS}
    # two images, same words: two prompt keys
    from trl.data_utils import prepare_multimodal_messages

    texts = [as_text(prepare_multimodal_messages(r["prompt"], images=[r["image"]])) for r in held[:2]]
    assert texts[0] != texts[1] and all(IMAGE_REF.search(x) for x in texts)


@pytest.mark.slow
@pytest.mark.xdist_group("trl")
def test_vlm_grpo_run_by_path_records_images_and_two_heldout_sets(tmp_path, tiny_vlm):
    from training.config import load
    from training.grpo import build_trainer

    path, _, _ = tiny_vlm
    cfg = load("training/configs/vlm/grpo.toml")
    from dataclasses import replace

    cfg = replace(cfg, model=replace(cfg.model, path=str(path)), task=replace(cfg.task, n_train=100, n_eval=12),
                  grpo=replace(cfg.grpo, steps=3), heldout=replace(cfg.heldout, every=3))
    build_trainer(cfg, str(tmp_path)).train()
    run = diag.open_run(tmp_path / cfg.name)
    g = run.groups.filter(pl.col("mode") == "train")
    assert g.height == 3 * 4 and g["prompt"].str.contains("<image:").all()
    assert g["prompt_hash"].n_unique() == g.height  # 12 different images, 12 prompts
    # each sampled prompt's image stored once, as a PNG the completions reference
    keys = {m for p in run.completions["prompt"].to_list() for m in IMAGE_REF.findall(p)}
    stored = {p.stem for p in (run.path / "images").glob("*.png")}
    assert keys and keys <= stored
    # both held-out sets, at the same steps, item by item
    acc = run.evals.filter((pl.col("metric") == "accuracy") & (pl.col("bucket") == "all"))
    per_set = {s: sorted(d["step"].to_list()) for (s,), d in acc.group_by("eval_set")}
    assert per_set == {"heldout": [0, 3], "digits-text": [0, 3]}
    assert run.eval_items.filter(pl.col("eval_set") == "digits-text").height == 2 * 12
    assert run.meta["heldout_sets"][1] == {"name": "digits-text", "n": 12, "every": 3, "k": 1}


@pytest.mark.slow
@pytest.mark.xdist_group("trl")
def test_vlm_sft_run_trains_on_images_and_evaluates_both_sets(tmp_path, cache_dir):
    from dataclasses import replace

    from training.config import load
    from training.launch import launch

    cfg = load("training/configs/vlm/sft.toml")
    cfg = replace(cfg, task=replace(cfg.task, n_train=64, n_eval=8), sft=replace(cfg.sft, steps=3, eval_every=3))
    run = diag.open_run(launch(cfg, str(tmp_path)))
    acc = run.evals.filter((pl.col("metric") == "accuracy") & (pl.col("bucket") == "all"))
    assert sorted(acc["eval_set"].unique().to_list()) == ["digits-text", "heldout"]
    assert sorted(acc["step"].unique().to_list()) == [0, 3]
    loss = run.scalars.filter(pl.col("key") == "train_loss")  # 3 steps: TRL logs the run's mean loss
    assert loss.height >= 1 and loss["value"].is_finite().all()
    assert (tmp_path / cfg.name / "checkpoint" / "config.json").is_file()


@pytest.mark.slow
def test_shipped_vlm_bases_read_the_images_in_order(cache_dir):
    """The shipped VLM bases load by name, each inside the band it was chosen by, and the strong one reads
    the drawn numbers better than the weak one here too (a sign, not a number: greedy decoding of fixed
    weights may flip a few items between machines)."""
    from training.bases import VLM_BANDS, info
    from training.config import ModelCfg
    from training.models import resolve
    from training.tasks import greedy_eval
    from training.vlm import load_vlm

    task = get_task("digits-image")
    _, held = split(task, 2000, 100, seed=0)
    acc = {}
    for name, ((lo, hi), _) in VLM_BANDS.items():
        meta = info(name)
        assert lo <= meta["heldout_accuracy"] <= hi and meta["task"] == "digits-image"
        model, proc = load_vlm(resolve(ModelCfg(path=f"base:{name}")))
        correct = greedy_eval(model, proc, task, held, 6)[1]
        acc[name] = sum(correct) / len(correct)
    assert acc["vlm-strong"] > acc["vlm-weak"]
