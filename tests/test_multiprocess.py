"""Two CPU processes through `accelerate launch` (gloo): the hook's multi-process path, for real.

The same config on one process and on two trains the same global batch (grpo.prompts_per_step is
global), so the stores must agree on every step's groups; and a stop decided by the main process's
monitor must stop both ranks at the same step (each rank's last step is recorded in run.json).
"""

import os
import subprocess
import sys

import polars as pl
import pytest

import diag

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("multiprocess")]

CONFIG = """
name = "{name}"
kind = "grpo"
seed = 0
[model]
path = "base:weak"
[task]
name = "add2"
n_train = 400
n_eval = 40
[grpo]
steps = {steps}
lr = 1e-4
num_generations = 4
prompts_per_step = 4
max_completion_length = 8
rewards = ["strict_correct"]
[heldout]
every = 3
max_new_tokens = 8
[monitor]
console = false
{monitor}
"""


def _train(tmp_path, name: str, processes: int, steps: int, monitor: str = "") -> diag.Run:
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(CONFIG.format(name=name, steps=steps, monitor=monitor))
    runs = tmp_path / "runs"
    train = ["-m", "diag.cli", "train", str(cfg), "--out", str(runs)]
    if processes == 1:
        cmd = [sys.executable, *train]
    else:  # torchrun under accelerate; without CUDA every rank is a CPU process on the gloo backend
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", "0", *train]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-4000:]
    # one line from the main process, not one per rank
    assert proc.stdout.count(f"run {name} written to") == 1, proc.stdout
    return diag.open_run(runs / name)


def _train_groups(run: diag.Run) -> pl.DataFrame:
    return (run.groups.filter(pl.col("mode") == "train")
            .group_by("step").agg(pl.len().alias("n"), pl.col("prompt_hash").sort().alias("prompts"),
                                  pl.col("G").max().alias("G"))
            .sort("step"))


def test_two_processes_record_the_same_groups_as_one(tmp_path):
    one = _train(tmp_path, "one", 1, steps=6)
    two = _train(tmp_path, "two", 2, steps=6)
    assert two.meta["num_processes"] == 2 and one.meta["num_processes"] == 1
    assert two.meta["processes"]["final_step_per_rank"] == [6, 6]
    assert two.meta["processes"]["backend"] == "gloo"
    assert two.status == "finished"
    # every rank's groups reached the store exactly once: the same prompts, step by step
    g1, g2 = _train_groups(one), _train_groups(two)
    assert g2["step"].to_list() == list(range(1, 7))
    assert g2["n"].to_list() == [4] * 6 and set(g2["G"]) == {4}
    assert g2["prompts"].to_list() == g1["prompts"].to_list()
    assert two.groups.filter(pl.col("mode") == "train").select("step", "group").is_duplicated().sum() == 0
    assert two.steps["step"].to_list() == one.steps["step"].to_list()
    assert two.steps["n_completions"].to_list() == [16] * 6
    assert two.completions.height == one.completions.height
    # truth (by default the held-out verifier, here the same check as the strict reward) is judged by each
    # rank on its own completions and gathered with the lengths: it lands on the same completions as the
    # rewards, group by group, and every completion is judged
    for run in (one, two):
        g = run.groups.filter(pl.col("mode") == "train")
        assert g["n_true"].to_list() == g["n_pass"].to_list()
        assert run.steps["n_truth"].to_list() == run.steps["n_completions"].to_list()
        per_step = g.group_by("step").agg(pl.col("n_true").sum() / pl.col("G").sum()).sort("step")["n_true"]
        assert run.steps["truth_rate"].to_list() == pytest.approx(per_step.to_list())
    # the held-out set is evaluated once per evaluation step, on the main process, over every item
    acc = two.evals.filter((pl.col("bucket") == "all") & (pl.col("metric") == "accuracy"))
    assert acc["step"].to_list() == [0, 3, 6] and set(acc["n"]) == {40}
    ref = one.evals.filter((pl.col("bucket") == "all") & (pl.col("metric") == "accuracy"))
    assert acc["step"].to_list() == ref["step"].to_list()
    # ... and split over both ranks, then put back in item order: before any update the weights are the
    # same, so the greedy completions match the single process's item by item (a rare argmax flip from
    # different padding within a batch is tolerated)
    items1, items2 = (r.eval_items.filter(pl.col("step") == 0).sort("item") for r in (one, two))
    assert items2["item"].to_list() == list(range(40))
    same = sum(a == b for a, b in zip(items1["completion"].to_list(), items2["completion"].to_list()))
    assert same >= 38, f"only {same} of 40 held-out completions agree at step 0"
    # only the main process wrote: one run directory per launch, nothing else in the runs root
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["one", "two"]


def test_a_stop_from_the_main_process_stops_every_rank(tmp_path):
    """stop_on = signal_gap on the weak base (most groups all-fail): the monitor on rank 0 asks to
    stop; rank 1 must stop at the same step (otherwise it would hang in the next gradient all-reduce
    and the launch would time out)."""
    run = _train(tmp_path, "stop", 2, steps=60, monitor='stop_on = ["signal_gap"]\nkeep_best = true')
    assert run.status == "finished"
    assert run.meta["stop_reason"].startswith("signal_gap")
    ranks = run.meta["processes"]["final_step_per_rank"]
    assert len(ranks) == 2 and ranks[0] == ranks[1] < 60
    assert run.steps["step"].max() == ranks[0]
    assert (run.path / "best-checkpoint").is_dir()


def test_dynamic_sampling_across_two_processes(tmp_path):
    """Refill rounds are collectives (TRL gathers rewards over the ranks): both ranks must run the same
    number of rounds. The run finishes, both ranks at the last step, every round recorded once."""
    run = _train(tmp_path, "ds", 2, steps=4, monitor="[remedy]\ndynamic_sampling = true\nmax_rounds = 2")
    assert run.status == "finished" and run.meta["processes"]["final_step_per_rank"] == [4, 4]
    s = run.scalars.filter(pl.col("key") == "diag/dynamic_rounds")
    assert s["step"].to_list() == [1, 2, 3, 4]
    rounds = int(sum(s["value"].to_list()))
    share = run.scalars.filter(pl.col("key") == "diag/dynamic_live_share")["value"].to_list()
    bound = run.scalars.filter(pl.col("key") == "diag/dynamic_bound_reached")["value"].to_list()
    assert all(v == 1.0 or b == 1.0 for v, b in zip(share, bound))
    assert run.groups.filter(pl.col("mode") == "train").height == (4 + rounds) * 4
