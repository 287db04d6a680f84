"""Real TRL GRPO steps on the tiny model, read back from the store; the hook's contract with TRL."""


import polars as pl
import pytest

import diag
from training.config import from_dict

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("trl")]


def tiny_cfg(name, **grpo):
    g = {"steps": 3, "lr": 1e-4, "num_generations": 4, "prompts_per_step": 4, "max_completion_length": 6,
         "rewards": ["strict_correct", "digits_format"], "verifier": "strict_correct", **grpo}
    return from_dict({"name": name, "model": {"path": "tiny"}, "task": {"name": "add1", "n_train": 64, "n_eval": 12},
                      "grpo": g, "heldout": {"every": 2, "max_new_tokens": 4}})


def test_contract_attributes_exist():
    """The private hook point this adapter reads: fails loudly when TRL changes it."""
    import inspect

    from trl import GRPOTrainer

    src = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    for needle in ('self._logs["prompt"].extend', 'self._logs["completion"].extend',
                   'self._logs["rewards"][name].extend', 'self._logs["advantages"].extend(all_process_advantages',
                   '"completion_mask"', '"completion_ids"'):
        assert needle in src, f"TRL's _generate_and_score_completions no longer contains {needle!r}"
    init = inspect.getsource(GRPOTrainer.__init__)
    assert "deque(maxlen=args.generation_batch_size)" in init
    assert "self.num_generations_eval" in init and "self.reward_func_names" in init


def test_a_trainer_without_the_contract_is_refused_by_name():
    """diag.integrations.trl.contract lists the private surface in one place; a trainer lacking part of
    it is refused with the missing names and the TRL versions tested."""
    from types import SimpleNamespace

    from diag.integrations.trl import ContractError, check_contract
    from diag.integrations.trl.contract import CONTRACT_ATTRS

    partial = SimpleNamespace(**{a: None for a in CONTRACT_ATTRS if a != "reward_weights"})
    with pytest.raises(ContractError, match="reward_weights.*trl>=1.16,<1.17"):
        check_contract(partial)
    no_logs = SimpleNamespace(**{a: None for a in CONTRACT_ATTRS}, )
    no_logs._logs = {"prompt": [], "completion": []}
    with pytest.raises(ContractError, match="rewards"):
        check_contract(no_logs)


def test_tested_trl_version():
    import trl
    from packaging.version import Version

    from diag.integrations.trl import TESTED_TRL

    v = Version(trl.__version__)
    assert Version(TESTED_TRL[0][2:]) <= v < Version(TESTED_TRL[1][1:])


def test_real_grpo_run_recorded(tmp_path, cache_dir):
    from training.grpo import build_trainer

    cfg = tiny_cfg("trl-run")
    trainer = build_trainer(cfg, str(tmp_path))
    trl_logs = []
    from transformers import TrainerCallback

    class Grab(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            trl_logs.append(dict(logs or {}))

    trainer.add_callback(Grab())
    trainer.train()
    run = diag.open_run(tmp_path / "trl-run")
    assert run.status == "finished"
    assert run.reward_funcs == ["strict_correct", "digits_format"]
    assert run.meta["group_size"] == 4 and run.meta["framework"] == "trl"
    steps = run.steps
    assert steps["step"].to_list() == [1, 2, 3]
    g = run.groups.filter(pl.col("mode") == "train")
    assert g.height == 3 * 4 and set(g["G"]) == {4}
    assert set(g["signal"]) <= {"mixed", "all_fail", "all_pass", "tied"}
    # our whole-batch reward equals TRL's logged reward for the same step (logging_steps=1)
    trl_rewards = [l["reward"] for l in trl_logs if "reward" in l]
    assert steps["reward_mean"].to_list() == pytest.approx(trl_rewards, abs=1e-6)
    # under group scaling TRL's zero-std fraction equals our dead-group share
    trl_zero = [l["frac_reward_zero_std"] for l in trl_logs if "frac_reward_zero_std" in l]
    assert steps["frac_zero_signal"].to_list() == pytest.approx(trl_zero, abs=1e-6)
    # diag metrics flowed into TRL's own logs (what W&B / TensorBoard receive)
    assert all("diag/frac_all_fail" in l for l in trl_logs if "reward" in l)
    assert any(k.startswith("diag/heldout/accuracy") for l in trl_logs for k in l)
    # ... but they do not come back into the store as a second copy of its own numbers
    assert not [c for c in steps.columns if c.startswith("diag/")]
    # trainer scalars joined per step
    assert steps["loss"].null_count() == 0
    # held-out evaluations at 0, 2 and the final step 3, per bucket
    acc = run.evals.filter((pl.col("metric") == "accuracy") & (pl.col("bucket") == "all"))
    assert acc["step"].to_list() == [0, 2, 3]
    assert all(0.0 <= v <= 1.0 for v in acc["value"])
    assert run.eval_items.filter(pl.col("step") == 0).height == acc["n"][0]
    # completions sampled with rewards per function and advantages
    c = run.completions
    assert c.height > 0 and c["rewards"].list.len().unique().to_list() == [2]
    assert c["advantage"].null_count() == 0 and c["length"].null_count() == 0
    # lengths are token counts within the cap
    assert 0 < steps["len_mean"].max() <= 6


def test_batch_scaling_hides_dead_groups_from_trl_not_from_us(tmp_path, cache_dir):
    """Every group tied (reward depends on the prompt only), yet the batch std is not zero:
    TRL's frac_reward_zero_std reads 0 under batch scaling while no group carries any signal."""
    from training.grpo import build_trainer

    cfg = tiny_cfg("batch-scaled", scale_rewards="batch", rewards=["strict_correct"], verifier=None, steps=2)
    trainer = build_trainer(cfg, str(tmp_path))
    digit_sum = lambda p: float(sum(int(ch) for ch in p if ch.isdigit()))  # noqa: E731
    trainer.reward_funcs[0] = lambda prompts, completions, **kw: [digit_sum(p) for p in prompts]
    trainer.train()
    run = diag.open_run(tmp_path / "batch-scaled")
    assert run.steps["frac_zero_signal"].to_list() == [1.0, 1.0]
    assert run.steps["effective_batch"].to_list() == [0, 0]
    trl_zero = run.scalars.filter(pl.col("key") == "frac_reward_zero_std")["value"].to_list()
    assert trl_zero == [0.0, 0.0]


def test_instrument_existing_trainer_one_call(tmp_path, cache_dir):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from diag.integrations.trl import DiagConfig, HeldOut, instrument
    from training.models import tiny_path
    from training.config import ModelCfg
    from training.tasks import get_task, split
    from training.tasks.rewards import strict_correct

    path = tiny_path(ModelCfg(), 0)
    train, held = split(get_task("add1"), 32, 8)
    args = GRPOConfig(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=8,
                      num_generations=4, max_completion_length=4, report_to=[], use_cpu=True,
                      logging_steps=1, save_strategy="no", disable_tqdm=True)
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(path), reward_funcs=[strict_correct],
                          args=args, train_dataset=Dataset.from_list(train),
                          processing_class=AutoTokenizer.from_pretrained(path))
    rec = instrument(trainer, DiagConfig(root=str(tmp_path), name="plain",
                                         heldout=HeldOut(held, lambda c, r: c.strip() == r["answer"], every=1)))
    trainer.train()
    run = diag.open_run(rec.path)
    assert run.steps["step"].to_list() == [1, 2]
    assert run.meta["verifier"] == "strict_correct"
    assert run.evals.filter(pl.col("bucket") == "all")["step"].to_list() == [0, 1, 2]
    # the held-out verifier is the truth by default, judged on every training completion with its row
    assert run.meta["truth"] == "held-out verifier (heldout)"
    assert run.steps["n_truth"].to_list() == run.steps["n_completions"].to_list()
    assert run.completions.height > 0 and run.completions["truth"].null_count() == 0
    with pytest.raises(RuntimeError, match="already instrumented"):
        instrument(trainer, DiagConfig(root=str(tmp_path), name="again"))


def test_a_truth_function_that_raises_leaves_those_completions_unjudged(tmp_path, cache_dir, capsys):
    from training.grpo import build_trainer

    trainer = build_trainer(tiny_cfg("truth-raises", steps=2), str(tmp_path))
    seen = {"n": 0}

    def truth(completion, row):
        seen["n"] += 1
        if seen["n"] % 2:
            raise KeyError("answer")
        return completion.strip() == row["answer"]

    trainer._diag.truth_fn = truth
    trainer.train()
    run = diag.open_run(tmp_path / "truth-raises")
    assert run.status == "finished"
    assert run.steps["n_truth"].to_list() == [8, 8] and run.steps["n_completions"].to_list() == [16, 16]
    assert "the truth function raised KeyError" in capsys.readouterr().err


def test_crash_in_training_marks_run_crashed(tmp_path, cache_dir):
    from training.grpo import build_trainer

    cfg = tiny_cfg("crash", steps=3)
    trainer = build_trainer(cfg, str(tmp_path))
    calls = {"n": 0}
    orig = trainer.reward_funcs[0]

    def flaky(prompts, completions, **kw):
        calls["n"] += 1
        if calls["n"] > 1:
            raise ZeroDivisionError("reward server fell over")
        return orig(prompts=prompts, completions=completions, **kw)

    trainer.reward_funcs[0] = flaky
    with pytest.raises(ZeroDivisionError):
        trainer.train()
    run = diag.open_run(tmp_path / "crash")
    assert run.status == "crashed" and "reward server" in run.meta["error"]
    assert run.steps["step"].to_list() == [1]  # the flushed step survives


def test_capture_error_never_stops_training(tmp_path, cache_dir, capsys):
    from training.grpo import build_trainer

    trainer = build_trainer(tiny_cfg("capture-error", steps=2), str(tmp_path))
    trainer._diag.recorder.log_batch = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk on fire"))
    trainer.train()
    assert "capture disabled after an error: RuntimeError: disk on fire" in capsys.readouterr().err
    assert diag.open_run(tmp_path / "capture-error").status == "finished"


def test_monitor_stops_training_and_keeps_best_checkpoint(tmp_path, cache_dir):
    """A random model fails everything: with stop_on=signal_gap the run stops early, keeps the best
    checkpoint by held-out accuracy, and records the alert and the reason."""
    from transformers import AutoModelForCausalLM

    from diag.detect import DetectParams
    from diag.detect.signal_gap import SignalGapParams
    from diag.monitor import MonitorConfig
    from training.grpo import build_trainer

    cfg = from_dict({**tiny_cfg("stopper", steps=12).to_dict(), "source": "",
                     "monitor": {"stop_on": ["signal_gap"], "keep_best": True, "console": False}})
    # a short window so the tiny run shows a sustained gap within a few steps
    monitor = MonitorConfig(params=DetectParams(signal_gap=SignalGapParams(window=3)), console=False,
                            stop_on=("signal_gap",))
    trainer = build_trainer(cfg, str(tmp_path), monitor=monitor)
    trainer.train()
    run = diag.open_run(tmp_path / "stopper")
    assert run.steps["step"].max() < 12
    assert run.meta["stop_reason"].startswith("signal_gap at step 3")
    assert run.alerts["kind"].to_list() == ["signal_gap"]
    best = run.meta["best_checkpoint"]
    assert (tmp_path / "stopper" / "best-checkpoint" / "config.json").exists()
    AutoModelForCausalLM.from_pretrained(best["path"])  # loadable
    acc = run.evals.filter((pl.col("bucket") == "all") & (pl.col("metric") == "accuracy"))
    assert best["accuracy"] == pytest.approx(acc["value"].max())


def test_sigkill_of_a_real_trainer_leaves_a_readable_crashed_run(tmp_path, cache_dir):
    """`grpo-diag train` killed with SIGKILL mid-run: every flushed step is intact, in order, with no
    duplicates, and the run shows as crashed rather than running."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cfg = tmp_path / "long.toml"
    cfg.write_text('name = "killed"\n[model]\npath = "tiny"\n[task]\nname = "add1"\nn_train = 64\nn_eval = 8\n'
                   '[grpo]\nsteps = 400\nnum_generations = 4\nprompts_per_step = 2\nmax_completion_length = 4\n'
                   '[heldout]\nevery = 50\nmax_new_tokens = 4\n[monitor]\nconsole = false\n')
    env = {**os.environ, "GRPO_DIAG_CACHE": str(cache_dir)}
    proc = subprocess.Popen([sys.executable, "-m", "diag.cli", "train", str(cfg), "--out", str(tmp_path)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    steps_dir = tmp_path / "killed" / "steps"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(steps_dir.glob("seg-*.parquet")) if steps_dir.exists() else []) < 3:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = diag.open_run(tmp_path / "killed")
    steps = run.steps.filter(pl.col("reward_mean").is_not_null())["step"].to_list()
    assert len(steps) >= 3 and steps == list(range(1, len(steps) + 1))
    assert run.status == "crashed"


def test_clipped_share_matches_trl_on_a_chat_model(tmp_path, cache_dir):
    """A chat model ends its turn with <|im_end|>, which is not the tokenizer's EOS: a completion that
    stops there is not clipped. The recorded share must equal TRL's own clipped ratio at every step."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig

    from diag.integrations.trl import DiagConfig, DiagGRPOTrainer
    from training.config import ModelCfg
    from training.models import tiny_path
    from training.tasks import get_task, split
    from training.tasks.rewards import strict_correct

    path = tiny_path(ModelCfg(), 0)
    tok = AutoTokenizer.from_pretrained(path)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_end|>"]})
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    end_of_turn = tok.convert_tokens_to_ids("<|im_end|>")
    assert end_of_turn != tok.eos_token_id
    model = AutoModelForCausalLM.from_pretrained(path)
    model.resize_token_embeddings(len(tok))
    model.generation_config.eos_token_id = [tok.eos_token_id, end_of_turn]
    train, _ = split(get_task("add1"), 64, 8)
    rows = [{"prompt": [{"role": "user", "content": r["prompt"]}], "answer": r["answer"]} for r in train]
    args = GRPOConfig(output_dir=str(tmp_path / "out"), max_steps=4, per_device_train_batch_size=32,
                      num_generations=4, max_completion_length=24, report_to=[], use_cpu=True,
                      logging_steps=1, save_strategy="no", disable_tqdm=True, seed=0)
    trl_clipped = []

    class Grab(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "completions/clipped_ratio" in logs:
                trl_clipped.append(logs["completions/clipped_ratio"])

    trainer = DiagGRPOTrainer(model=model, reward_funcs=[strict_correct], args=args,
                              train_dataset=Dataset.from_list(rows), processing_class=tok, callbacks=[Grab()],
                              diag=DiagConfig(root=str(tmp_path), name="chat", monitor=None))
    assert end_of_turn in trainer.eos_token_ids
    trainer.train()
    recorded = diag.open_run(tmp_path / "chat").steps["frac_clipped"].to_list()
    assert len(recorded) == len(trl_clipped) == 4
    assert recorded == pytest.approx(trl_clipped, abs=1e-9)
    # 128 completions of 24 tokens from a random model over ~80 tokens: some end on each stop id, so
    # this run tells the two ways of counting apart (counting <eos> alone gives a larger share).
    assert min(trl_clipped) < 1.0
