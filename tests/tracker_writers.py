"""Write runs into the four trackers with the trackers' own code, as the trainers do (run as a script).

    python tests/tracker_writers.py KIND OUT [--delay S] trl:NAME=TRAINER_STATE.json ... verl:NAME=METRICS.json ...

TRL runs are replayed through transformers' own `report_to` callbacks (WandbCallback, TensorBoardCallback,
MLflowCallback, TrackioCallback), fed the trainer_state.json's log_history one `on_log` at a time with
`state.global_step` set, so the keys, steps and row splits are exactly what a Trainer writes. verl runs are
logged the way verl's `Tracking` class logs them (verl/utils/tracking.py, 0.9.1): `wandb.log(data, step=)`,
`SummaryWriter.add_scalar(key, value, step)`, `mlflow.log_metrics` with `@` -> `_at_`, `trackio.log(data,
step=)`. Each tracker keeps process-wide state (W&B's service, Trackio's TRACKIO_DIR read at import,
MLflow's active run): one process per tracker, its runs written one after another.

KIND: wandb (offline run under OUT/wandb), tensorboard (OUT/tb/NAME), mlflow (sqlite OUT/mlflow.db),
trackio (OUT/trackio/grpo-diag.db). `--delay S` sleeps between rows (a run being written, for `watch`).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path


def _env(kind: str, out: Path) -> None:
    os.environ.update(WANDB_MODE="offline", WANDB_DIR=str(out), WANDB_SILENT="true", WANDB_DISABLE_GIT="true",
                      WANDB_CONSOLE="off", WANDB_PROJECT="grpo-diag", MLFLOW_TRACKING_URI=f"sqlite:///{out / 'mlflow.db'}",
                      MLFLOW_EXPERIMENT_NAME="grpo-diag", TRACKIO_DIR=str(out / "trackio"), HF_HUB_OFFLINE="1")


def trl(kind: str, out: Path, name: str, state_file: Path, delay: float = 0.0) -> None:
    _env(kind, out)
    from transformers import TrainerControl, TrainerState, TrainingArguments
    from transformers.integrations import integration_utils as iu

    os.environ["TENSORBOARD_LOGGING_DIR"] = str(out / "tb" / name)  # read when the callback is made
    callback = {"wandb": iu.WandbCallback, "tensorboard": iu.TensorBoardCallback, "mlflow": iu.MLflowCallback,
                "trackio": iu.TrackioCallback}[kind]()
    args = TrainingArguments(output_dir=str(out / "trainer"), run_name=name, report_to=[], project="grpo-diag",
                             trackio_static_space_id=False, learning_rate=3e-6)
    state, control = TrainerState(), TrainerControl()
    history = json.loads(state_file.read_text())["log_history"]
    state.max_steps = max(r["step"] for r in history)
    callback.on_train_begin(args, state, control)
    for row in history:
        state.global_step = int(row["step"])
        callback.on_log(args, state, control, logs={k: v for k, v in row.items() if k != "step"})
        if delay:
            _flush(kind, callback)
            time.sleep(delay)
    callback.on_train_end(args, state, control)
    if kind == "wandb":
        import wandb

        wandb.finish()
    if kind == "mlflow":
        import mlflow

        if mlflow.active_run():
            mlflow.end_run()


def _flush(kind: str, callback) -> None:
    if kind == "tensorboard" and getattr(callback, "tb_writer", None) is not None:
        callback.tb_writer.flush()


_MLFLOW_REFUSED = re.compile(r"[^/\w.\- :]")


def verl(kind: str, out: Path, name: str, metrics_file: Path, delay: float = 0.0) -> None:
    """metrics_file: {"step": {key: value}} as verl's trainer passes them to Tracking.log."""
    _env(kind, out)
    by_step = {int(k): v for k, v in json.loads(metrics_file.read_text()).items()}
    if kind == "wandb":
        import wandb

        run = wandb.init(project="grpo-diag", name=name, config={"actor_rollout_ref": {"rollout": {"n": 8},
                                                                                        "actor": {"optim": {"lr": 1e-6}}}})
        log, end = (lambda d, s: run.log(d, step=s)), run.finish
    elif kind == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb" / name))

        def log(d, s):
            for k, v in d.items():
                writer.add_scalar(k, v, s)
            writer.flush()
        end = writer.close
    elif kind == "mlflow":
        import mlflow

        mlflow.set_experiment("grpo-diag")
        mlflow.start_run(run_name=name)
        mlflow.log_params({"actor_rollout_ref/rollout/n": 8})
        log = lambda d, s: mlflow.log_metrics(  # noqa: E731
            {_MLFLOW_REFUSED.sub("_", re.sub("/+", "/", k.replace("@", "_at_"))): v for k, v in d.items()}, step=s)
        end = mlflow.end_run
    else:
        import trackio

        trackio.init(project="grpo-diag", name=name, config={"actor_rollout_ref": {"rollout": {"n": 8}}})
        log, end = (lambda d, s: trackio.log(d, step=s)), trackio.finish
    for step in sorted(by_step):
        log(by_step[step], step)
        if delay:
            time.sleep(delay)
    end()


def main(argv: list[str]) -> None:
    delay = 0.0
    if "--delay" in argv:
        i = argv.index("--delay")
        delay = float(argv[i + 1])
        del argv[i:i + 2]
    kind, out, *runs = argv
    for spec in runs:
        who, rest = spec.split(":", 1)
        name, src = rest.split("=", 1)
        {"trl": trl, "verl": verl}[who](kind, Path(out), name, Path(src), delay)


if __name__ == "__main__":
    main(sys.argv[1:])
