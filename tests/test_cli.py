"""The command line end to end on tiny configs: train (grpo, sft, sft_grpo), runs, show."""

import json

import pytest

import diag
from diag.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("trl")]

GRPO = """
name = "cli-grpo"
kind = "{kind}"
[model]
path = "tiny"
[task]
name = "add1"
n_train = 64
n_eval = 10
[sft]
steps = 20
batch_size = 8
eval_every = 10
[grpo]
steps = 2
num_generations = 4
prompts_per_step = 2
max_completion_length = 4
[heldout]
every = 1
max_new_tokens = 4
"""


def _write(tmp_path, kind):
    p = tmp_path / f"{kind}.toml"
    p.write_text(GRPO.format(kind=kind))
    return p


def test_train_grpo_runs_show(tmp_path, cache_dir, capsys):
    cfg = _write(tmp_path, "grpo")
    assert main(["train", str(cfg), "--out", str(tmp_path / "runs")]) == 0
    run = diag.open_run(tmp_path / "runs" / "cli-grpo")
    assert run.steps["step"].to_list() == [1, 2] and run.status == "finished"
    # a second launch under the same name is refused with the fix in the message
    assert main(["train", str(cfg), "--out", str(tmp_path / "runs")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["runs", "--root", str(tmp_path / "runs")]) == 0
    assert "cli-grpo" in capsys.readouterr().out
    assert main(["show", str(tmp_path / "runs" / "cli-grpo")]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["name"] == "cli-grpo" and shown["steps"] == 2 and shown["n_evals"] == 3


def test_train_sft_and_sft_then_grpo(tmp_path, cache_dir):
    assert main(["train", str(_write(tmp_path, "sft")), "--out", str(tmp_path / "runs"), "--name", "s"]) == 0
    sft = diag.open_run(tmp_path / "runs" / "s")
    assert sft.meta["kind"] == "sft"
    assert sft.evals.filter(bucket="all")["step"].to_list() == [0, 10, 20]
    assert main(["train", str(_write(tmp_path, "sft_grpo")), "--out", str(tmp_path / "runs"), "--name", "b"]) == 0
    assert diag.open_run(tmp_path / "runs" / "b-sft").meta["kind"] == "sft"
    both = diag.open_run(tmp_path / "runs" / "b")
    assert both.meta["kind"] == "sft_grpo"
    assert both.meta["model_path"].endswith("b-sft/checkpoint")  # GRPO starts from the SFT stage's model
    assert both.meta["model"].endswith("+ SFT (b-sft)")


def test_errors_exit_2(tmp_path, capsys):
    assert main(["show", str(tmp_path)]) == 2
    assert "not a grpo-diag run" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[grpo]\nrewards = ["nope"]\n')
    assert main(["train", str(bad)]) == 2
    assert "bad.toml: grpo.rewards has unknown function(s) ['nope']" in capsys.readouterr().err


def test_runs_piped_keeps_whole_names_and_json_parses(tmp_path, capsys):
    """`grpo-diag runs` piped (stdout not a terminal): tab-separated lines with a long run name whole,
    not a table cut to 80 columns; --json: the same rows as JSON."""
    import json

    import numpy as np

    name = "a-rather-long-run-name-that-a-terminal-table-would-cut-" + "x" * 40
    rec = diag.Recorder(str(tmp_path), name, ["r"], group_size=4, flush_secs=0)
    rec.log_batch(1, np.ones(16) * 0.5)
    rec.close()
    assert main(["runs", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split("\t")[0] == "run" and out[1].split("\t")[0] == name
    assert main(["runs", "--root", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["run"] == name and rows[0]["steps"] == 1
