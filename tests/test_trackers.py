"""The diag/* numbers reach the trackers users already watch: TensorBoard event files and a local
Trackio project, each read back with the tracker's own reader, equal to what the run store holds."""

import json
import os
import subprocess
import sys

import polars as pl
import pytest

import diag

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("trl")]

CONFIG = """
name = "tracked"
kind = "grpo"
[model]
path = "base:weak"
[task]
name = "add1"
n_train = 64
n_eval = 12
[grpo]
steps = 4
num_generations = 4
prompts_per_step = 4
max_completion_length = 6
rewards = ["strict_correct", "digits_format"]
verifier = "strict_correct"
report_to = ["tensorboard", "trackio", "wandb", "mlflow"]
[heldout]
every = 2
max_new_tokens = 4
[monitor]
console = false
"""

READ_TRACKIO = """
import json, sys
from trackio.sqlite_storage import SQLiteStorage
import trackio
runs = [r.name for r in trackio.Api().runs("grpo-diag")]
print(json.dumps({"runs": runs, "logs": SQLiteStorage.get_logs("grpo-diag", "tracked")}, default=str))
"""


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    pytest.importorskip("tensorboard")
    pytest.importorskip("trackio")
    pytest.importorskip("wandb")
    pytest.importorskip("mlflow")
    tmp = tmp_path_factory.mktemp("trackers")
    (tmp / "tracked.toml").write_text(CONFIG)
    # Trackio keeps its projects under TRACKIO_DIR, read when it is imported: a fresh process each way
    env = {**os.environ, "TRACKIO_DIR": str(tmp / "trackio"), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "WANDB_MODE": "offline", "WANDB_DIR": str(tmp), "WANDB_SILENT": "true", "WANDB_DISABLE_GIT": "true",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}", "MLFLOW_EXPERIMENT_NAME": "grpo-diag"}
    proc = subprocess.run([sys.executable, "-m", "diag.cli", "train", str(tmp / "tracked.toml"), "--out",
                           str(tmp / "runs")], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    read = subprocess.run([sys.executable, "-c", READ_TRACKIO], env=env, capture_output=True, text=True, timeout=120)
    assert read.returncode == 0, read.stderr[-3000:]
    return diag.open_run(tmp / "runs" / "tracked"), json.loads(read.stdout.strip().splitlines()[-1])


def _store_series(run, key: str) -> dict[int, float]:
    steps = run.steps.filter(pl.col(key).is_not_null())
    return dict(zip(steps["step"].to_list(), steps[key].to_list()))


def test_tensorboard_event_files_hold_the_diag_scalars(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, _ = tracked
    events = sorted(run.path.rglob("events.out.tfevents.*"))
    assert events, f"no TensorBoard event file under {run.path}"
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for key in ("frac_all_fail", "frac_zero_signal", "effective_batch", "adv_var_mean"):
        assert f"train/diag/{key}" in tags, sorted(tags)
        got = {e.step: e.value for e in acc.Scalars(f"train/diag/{key}")}
        assert got == pytest.approx(_store_series(run, key), abs=1e-5)  # float32 in the event file
    # held-out accuracy, one value per evaluation; the one before training is logged with step 1 (TRL
    # writes its stream at optimizer steps only), the others at their own step
    held = [(e.step, e.value) for e in acc.Scalars("train/diag/heldout/accuracy")]
    store = run.evals.filter((pl.col("bucket") == "all") & (pl.col("metric") == "accuracy")).sort("step")
    assert [max(s, 1) for s in store["step"].to_list()] == [s for s, _ in held]
    assert [v for _, v in held] == pytest.approx(store["value"].to_list(), abs=1e-6)


def test_trackio_project_holds_the_diag_scalars(tracked):
    run, read = tracked
    assert read["runs"] == ["tracked"]
    logs = read["logs"]
    for key in ("frac_all_fail", "frac_zero_signal", "effective_batch", "adv_var_mean"):
        got = {int(r["step"]): r[f"train/diag/{key}"] for r in logs if f"train/diag/{key}" in r}
        assert got == pytest.approx(_store_series(run, key), abs=1e-9), key
    held = sorted((int(r["step"]), r["train/diag/heldout/accuracy"]) for r in logs if "train/diag/heldout/accuracy" in r)
    store = run.evals.filter((pl.col("bucket") == "all") & (pl.col("metric") == "accuracy")).sort("step")
    assert [v for _, v in held] == pytest.approx(store["value"].to_list(), abs=1e-9)


def test_each_tracker_reads_back_as_the_runs_trainer_state(tracked):
    """One real TRL training logged to W&B (offline), TensorBoard, MLflow and Trackio at once: each store,
    imported with no flag, gives the steps, evaluations (grpo-diag's held-out accuracy, which the hook sends
    into TRL's stream) and verdict of the same run's trainer_state.json."""
    from diag.detect import check_run
    from diag.importers import import_log

    run, _ = tracked
    tmp = run.path.parent.parent
    state = run.path / "checkpoint" / "trainer_state.json"
    ref = diag.open_run(import_log(state, root=str(tmp / "imported"), name="state")[0])
    assert ref.evals.height >= 2 and ref.steps["frac_all_fail"].null_count() == 0
    events = next(run.path.rglob("events.out.tfevents.*")).parent  # beside the checkpoint's trainer_state.json
    sources = {"wandb": next((tmp / "wandb").glob("offline-run-*")), "tensorboard": events,
               "mlflow": tmp / "mlflow.db", "trackio": tmp / "trackio" / "grpo-diag.db"}
    for kind, src in sources.items():
        got = diag.open_run(import_log(src, root=str(tmp / "imported"), name=kind)[0])
        assert got.meta["format"] == kind
        cols = ["step", "reward_mean", "frac_all_fail", "frac_zero_signal", "len_mean"]
        a, b = got.steps.select(cols).sort("step"), ref.steps.select(cols).sort("step")
        assert a["step"].to_list() == b["step"].to_list(), kind
        for c in cols[1:]:
            assert a[c].to_list() == pytest.approx(b[c].to_list(), rel=1e-6, abs=1e-9), (kind, c)
        ea, eb = (r.evals.select("step", "eval_set", "value").sort("step") for r in (got, ref))
        assert ea["step"].to_list() == eb["step"].to_list() and ea["eval_set"].to_list() == eb["eval_set"].to_list()
        assert ea["value"].to_list() == pytest.approx(eb["value"].to_list(), rel=1e-6), kind
        assert check_run(got)[1]["ends"] == check_run(ref)[1]["ends"], kind
