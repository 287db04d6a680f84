"""Import time and peak memory of a long run read from each tracker (W&B, TensorBoard, MLflow, Trackio).

    python benchmarks/trackers.py [--steps 100000] [--mlflow-steps 20000] [--every 100] [--record]

A TRL GRPO run of `--steps` steps under transformers' report_to names (reward, a reward function, loss,
length, zero-std share; an evaluation every `--every` steps) is written into each tracker by the tracker's
own library, each in its own process (W&B offline `wandb.log`, TensorBoard `SummaryWriter.add_scalar`,
MLflow `log_batch` into a sqlite store, Trackio `trackio.log`), then `grpo-diag import` reads it in a fresh
process: the figures are the import's wall time and the process's peak resident memory (the interpreter and
its libraries included), beside the trainer_state.json of the same run as the baseline. MLflow is written
and read at `--mlflow-steps` (its SQLite store takes about 1 s per 900 metrics to write, slower as it grows:
a 100k-step run did not finish writing in 27 minutes here); its figure says its own size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import report  # noqa: E402

WRITE = textwrap.dedent("""
    import json, math, os, sys, time
    kind, out, steps, every = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    def rows():
        for s in range(1, steps + 1):
            x = s / steps
            yield s, {"train/loss": 0.01, "train/reward": 0.8 + 0.1 * x + 0.02 * math.sin(s),
                      "train/rewards/correct/mean": 0.8 + 0.1 * x, "train/completions/mean_length": 200 + 100 * x,
                      "train/frac_reward_zero_std": 0.2, "train/epoch": x}
            if s % every == 0:
                yield s, {"eval/accuracy": 0.6 - 0.05 * x + 0.01 * math.cos(s), "train/epoch": x}
    t = time.perf_counter()
    if kind == "wandb":
        os.environ.update(WANDB_MODE="offline", WANDB_DIR=out, WANDB_SILENT="true", WANDB_CONSOLE="off")
        import wandb
        run = wandb.init(project="bench", config={"learning_rate": 1e-6, "num_generations": 8})
        for s, r in rows():
            run.log({**r, "train/global_step": s})
        run.finish()
    elif kind == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter
        w = SummaryWriter(out)
        for s, r in rows():
            for k, v in r.items():
                w.add_scalar(k, v, s)
        w.close()
    elif kind == "mlflow":
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient
        c = MlflowClient(f"sqlite:///{out}/mlflow.db")
        run = c.create_run(c.create_experiment("bench"), run_name="bench")
        batch, now = [], int(time.time() * 1000)
        raw = lambda k: "eval_" + k[5:] if k.startswith("eval/") else k[6:]
        for s, r in rows():
            batch += [Metric(raw(k), float(v), now, s) for k, v in r.items()]
            if len(batch) >= 900:
                c.log_batch(run.info.run_id, metrics=batch); batch = []
        if batch:
            c.log_batch(run.info.run_id, metrics=batch)
        c.set_terminated(run.info.run_id)
    elif kind == "trackio":
        os.environ["TRACKIO_DIR"] = out
        import trackio
        trackio.init(project="bench", name="bench", config={"learning_rate": 1e-6})
        for s, r in rows():
            trackio.log({**r, "train/global_step": s})
        trackio.finish()
    else:
        hist = []
        for s, r in rows():
            hist.append({"step": s, **{("eval_" + k[5:] if k.startswith("eval/") else k[6:]): v for k, v in r.items()}})
        os.makedirs(out, exist_ok=True)
        json.dump({"log_history": hist}, open(os.path.join(out, "trainer_state.json"), "w"))
    print(json.dumps({"write_s": time.perf_counter() - t}))
""")

IMPORT = textwrap.dedent("""
    import json, resource, sys, time
    from diag.importers import import_log
    t = time.perf_counter()
    out, notes = import_log(sys.argv[1], root=sys.argv[2], name="bench", overwrite=True)
    took = time.perf_counter() - t
    import diag
    run = diag.open_run(out)
    print(json.dumps({"import_s": took, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "steps": run.steps.height, "evals": run.evals.height}))
""")

SOURCES = {"trainer-state": lambda d: d / "trainer_state.json", "wandb": lambda d: d / "wandb" / "latest-run",
           "tensorboard": lambda d: d, "mlflow": lambda d: d / "mlflow.db",
           "trackio": lambda d: d / "bench.db"}


def _json_tail(proc: subprocess.CompletedProcess, what: str) -> dict:
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--mlflow-steps", type=int, default=20_000)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--only", nargs="*", default=list(SOURCES))
    ap.add_argument("--json")
    ap.add_argument("--record", action="store_true")
    a = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result: dict = {"steps": a.steps, "evaluations": a.steps // a.every, "mlflow_steps": a.mlflow_steps}
    with tempfile.TemporaryDirectory(prefix="grpo-diag-trackers-") as tmp:
        for kind in a.only:
            d = Path(tmp) / kind
            d.mkdir()
            steps = a.mlflow_steps if kind == "mlflow" else a.steps
            wrote = _json_tail(subprocess.run([sys.executable, "-c", WRITE, kind, str(d), str(steps), str(a.every)],
                                              env=env, capture_output=True, text=True), f"writing {kind}")
            got = _json_tail(subprocess.run([sys.executable, "-c", IMPORT, str(SOURCES[kind](d)), str(Path(tmp) / "runs")],
                                            env=env, capture_output=True, text=True), f"importing {kind}")
            if got["steps"] != steps or got["evals"] != steps // a.every:
                raise SystemExit(f"{kind}: imported {got['steps']} steps, {got['evals']} evaluations")
            size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
            result[kind] = {"steps": steps, "import_s": round(got["import_s"], 2), "peak_rss_mb": round(got["peak_rss_mb"]),
                            "source_mb": round(size / 2**20, 1), "write_s": round(wrote["write_s"], 1)}
            print(kind, result[kind], flush=True)
    result["when"] = time.strftime("%Y-%m-%d")
    report(result, a.json, "trackers" if a.record else None)


if __name__ == "__main__":
    main()
