"""Runs read where they live: W&B run folders, TensorBoard folders, MLflow stores and Trackio databases.

Every tracker file here is written by the tracker's own library the way the trainer writes it
(tests/tracker_writers.py: transformers' own report_to callbacks for TRL, verl's Tracking calls for verl),
then imported with no flag and compared with the same run read from its trainer_state.json or verl console
log: the same steps, evaluations, findings and verdict. The four real W&B folders in
../shared/real_logs/trackers import too. Contracts only: equal series (float32 tolerance for TensorBoard),
equal verdicts, the verdict kinds each shape is written to show.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import diag
from diag.cli import main
from diag.detect import check_run
from diag.importers import ImportFailure, detect_format, import_log
from diag.importers.wandb_log import scan
from tests.conftest import real_logs_dir

pytestmark = [pytest.mark.slow]
for _lib in ("wandb", "tensorboard", "mlflow", "trackio"):
    pytest.importorskip(_lib)

TRACKERS = ("wandb", "tensorboard", "mlflow", "trackio")
WRITER = Path(__file__).with_name("tracker_writers.py")
REAL_LOGS = real_logs_dir()
REAL = REAL_LOGS / "trackers"


# ------------------------------------------------------------------------------------------ the runs

def trl_history(shape: str, seed: int = 0) -> list[dict]:
    """A TRL GRPO log_history of one shape: `decoupled` (reward 0.80 -> 0.94 while accuracy drifts 0.54 ->
    0.49 and completions grow 220 -> 600 tokens), `healthy` (both rise), `dead` (reward ~0.03, 90% of groups
    with zero reward std, accuracy flat near 0.04)."""
    rng = np.random.default_rng(seed)
    hist = []
    for s in range(1, 211):
        if shape == "decoupled":
            reward, length = 0.80 + 0.14 * s / 210, 220.0 if s < 160 else 600.0
            acc = np.interp(s, [10, 50, 180, 210], [0.54, 0.54, 0.49, 0.49]) + rng.uniform(-0.02, 0.02)
            zero = 0.2
        elif shape == "healthy":
            reward, length, zero = 0.40 + 0.35 * s / 210, 200.0, 0.2
            acc = 0.40 + 0.30 * s / 210 + rng.uniform(-0.015, 0.015)
        else:
            reward, length, zero = 0.03, 180.0, 0.9 + rng.uniform(-0.03, 0.03)
            acc = 0.04 + rng.uniform(-0.01, 0.01)
        hist.append({"step": s, "loss": 0.01, "reward": float(np.clip(reward + rng.normal(0, 0.02), 0, 1)), "reward_std": 0.3,
                     "rewards/correct/mean": float(reward), "frac_reward_zero_std": float(zero),
                     "completions/mean_length": float(length + rng.normal(0, 5)),
                     "completions/clipped_ratio": 0.5 if length > 500 else 0.0, "epoch": s / 210})
        if s % 10 == 0:
            hist.append({"step": s, "eval_accuracy": float(acc), "eval_runtime": 1.5, "epoch": s / 210})
    hist.append({"step": 210, "train_runtime": 100.0, "train_loss": 0.01, "total_flos": 0.0, "epoch": 1.0})
    return hist


def verl_decoupled(seed: int = 0) -> dict[int, dict]:
    """verl's per-step metrics of a decoupled run: the score holds at ~0.72 while accuracy falls after step
    100 on both validation sets, MATH (0.61 -> 0.52) and AIME (0.16 -> 0.08)."""
    rng = np.random.default_rng(seed)
    out = {}
    for s in range(1, 201):
        row = {"critic/score/mean": 0.60 + 0.12 * min(s, 100) / 100 + rng.normal(0, 0.01),
               "critic/rewards/mean": 0.6, "response_length/mean": 400.0 + s, "response_length/clip_ratio": 0.01,
               "actor/entropy": 0.5, "timing_s/step": 30.0, "training/global_step": s}
        if s % 10 == 0:
            acc = 0.61 if s <= 100 else 0.52
            row["val-core/math/acc/mean@4"] = acc + rng.normal(0, 0.005)
            row["val-core/aime/acc/mean@4"] = (0.16 if s <= 100 else 0.08) + rng.normal(0, 0.01)
        out[s] = row
    return out


def verl_console(by_step: dict[int, dict]) -> str:
    return "".join(f"step:{s} - " + " - ".join(f"{k}:{v}" for k, v in r.items()) + "\n" for s, r in by_step.items())


def write_all(kind: str, out: Path, runs: list[str], delay: float = 0.0) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(WRITER.parent.parent)}
    cmd = [sys.executable, str(WRITER), kind, str(out), *(["--delay", str(delay)] if delay else []), *runs]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Each tracker written by its own library, in one process per tracker: three TRL shapes and two verl
    runs (a generated decoupled one and a real console log's metrics); the references beside them."""
    tmp = tmp_path_factory.mktemp("trackers")
    refs, runs = {}, []
    for shape in ("decoupled", "healthy", "dead"):
        p = tmp / f"{shape}.json"
        p.write_text(json.dumps({"log_history": trl_history(shape)}))
        refs[shape] = (p, "trainer-state")
        runs.append(f"trl:{shape}={p}")
    console = tmp / "verl-decoupled.log"
    by_step = verl_decoupled()
    console.write_text(verl_console(by_step))
    (tmp / "verl-decoupled.json").write_text(json.dumps(by_step))
    refs["verl-decoupled"] = (console, "verl-console")
    runs.append(f"verl:verl-decoupled={tmp / 'verl-decoupled.json'}")
    real = REAL_LOGS / "verl_ppo_qwen25_0.5b_gsm8k_resp512" / "Qwen2.5-0.5B-bsz256_2-prompt1024-resp512-0.567.log"
    if real.exists():  # a real verl run's own metric names and values, replayed through each tracker
        ref = diag.open_run(import_log(real, root=str(tmp / "scratch"), name="verl-real")[0])
        metrics: dict[int, dict] = {}
        for r in ref.scalars.iter_rows(named=True):
            metrics.setdefault(int(r["step"]), {})[r["key"]] = r["value"]
        (tmp / "verl-real.json").write_text(json.dumps(metrics))
        refs["verl-real"] = (real, "verl-console")
        runs.append(f"verl:verl-real={tmp / 'verl-real.json'}")
    with ThreadPoolExecutor(2) as pool:
        done = dict(zip(TRACKERS, pool.map(lambda k: write_all(k, tmp / k, runs), TRACKERS)))
    for kind, proc in done.items():
        assert proc.returncode == 0, f"{kind} writer failed:\n{proc.stderr[-3000:]}"
    return tmp, refs


def source_of(tmp: Path, kind: str, name: str) -> tuple[str, str | None]:
    """(path to import, --run) of run `name` in tracker `kind`'s files."""
    root = tmp / kind
    if kind == "wandb":
        folders = [d for d in (root / "wandb").glob("offline-run-*") if _wandb_name(d) == name]
        assert len(folders) == 1, folders
        return str(folders[0]), None
    if kind == "tensorboard":
        return str(root / "tb"), name
    if kind == "mlflow":
        return str(root / "mlflow.db"), name
    return str(root / "trackio" / "grpo-diag.db"), name


def _wandb_name(folder: Path) -> str:
    from diag.importers.wandb_log import read

    return read(folder).meta.get("name")


def _judged(path, tmp: Path, name: str, **kw):
    out, notes = import_log(path, root=str(tmp / "imported"), name=name, overwrite=True, **kw)
    run = diag.open_run(out)
    findings, verdict = check_run(run)
    return run, findings, verdict, notes


STEP_COLS = ["step", "reward_mean", "len_mean", "frac_clipped", "frac_zero_signal"]


def _same_series(got: diag.Run, want: diag.Run, rel: float) -> None:
    cols = [c for c in STEP_COLS if c in want.steps.columns]
    a, b = got.steps.select(cols).sort("step"), want.steps.select(cols).sort("step")
    assert a["step"].to_list() == b["step"].to_list()
    for c in cols[1:]:
        nan = lambda xs: [float("nan") if x is None else x for x in xs]  # noqa: E731 - a column the log lacks
        assert nan(a[c].to_list()) == pytest.approx(nan(b[c].to_list()), rel=rel, abs=1e-9, nan_ok=True), c
    ea = got.evals.select("step", "eval_set", "value").sort("eval_set", "step")
    eb = want.evals.select("step", "eval_set", "value").sort("eval_set", "step")
    assert ea.select("step", "eval_set").equals(eb.select("step", "eval_set"))
    assert ea["value"].to_list() == pytest.approx(eb["value"].to_list(), rel=rel)


def _shape(findings) -> list[tuple]:
    return sorted((f.kind, f.severity, f.firing) for f in findings if f.kind != "no_data")


# ------------------------------------------------------------------------------------------ the tests

@pytest.mark.parametrize("kind", TRACKERS)
@pytest.mark.parametrize("name", ["decoupled", "healthy", "dead", "verl-decoupled", "verl-real"])
def test_a_tracker_copy_gets_the_verdict_of_its_reference(written, kind, name):
    tmp, refs = written
    if name not in refs:
        pytest.skip("the real verl console log is not in ../shared/real_logs here")
    ref_path, ref_fmt = refs[name]
    want, want_findings, want_verdict, _ = _judged(ref_path, tmp, f"ref-{name}", fmt=ref_fmt)
    path, run = source_of(tmp, kind, name)
    assert detect_format(Path(path)) == kind  # no format flag
    got, findings, verdict, notes = _judged(path, tmp, f"{kind}-{name}", run=run)
    _same_series(got, want, rel=1e-6 if kind == "tensorboard" else 1e-12)  # event files hold float32
    assert verdict["ends"] == want_verdict["ends"]
    assert _shape(findings) == _shape(want_findings)
    assert any(n.startswith("mapped: reward_mean <- ") for n in notes), notes
    if name.startswith("verl"):  # verl's TensorBoard adapter writes no config
        assert got.meta["framework"] == "verl" and got.meta.get("group_size") == (None if kind == "tensorboard" else 8)
    else:  # the TrainingArguments each callback records (TensorBoard: as the `args` text)
        assert got.meta["framework"] == "trl" and got.meta.get("learning_rate") == pytest.approx(3e-6)


def test_the_written_shapes_get_the_verdicts_they_were_written_for(written):
    """The references themselves: a shape that no longer shows what it was written to show makes the
    comparison above empty."""
    tmp, refs = written
    kinds = {name: {f.kind for f in _judged(p, tmp, f"shape-{name}", fmt=fmt)[1] if f.firing and f.severity != "info"}
             for name, (p, fmt) in refs.items()}
    assert "decoupling" in kinds["decoupled"] and "decoupling" in kinds["verl-decoupled"]
    assert "signal_gap" in kinds["dead"]
    assert not kinds["healthy"]


def test_verl_validation_sets_stay_separate_through_mlflow_renaming(written):
    tmp, _ = written
    path, run = source_of(tmp, "mlflow", "verl-decoupled")
    got, _, _, notes = _judged(path, tmp, "mlflow-sets", run=run)
    assert sorted(got.evals["eval_set"].unique().to_list()) == ["aime", "math"]
    assert any("accuracy[math] <- val-core/math/acc/mean_at_4" in n for n in notes), notes


def test_several_runs_in_one_store_need_run_and_the_error_lists_them(written):
    tmp, _ = written
    for kind in ("tensorboard", "mlflow", "trackio"):
        path, _ = source_of(tmp, kind, "healthy")
        with pytest.raises(ImportFailure, match=r"pick one with --run.*healthy"):
            import_log(path, root=str(tmp / "imported"), name="x", overwrite=True)
    with pytest.raises(ImportFailure, match="no Trackio run 'nope'"):
        import_log(source_of(tmp, "trackio", "dead")[0], root=str(tmp / "imported"), run="nope")


# ------------------------------------------------------------------------------------------ real files

REAL_FOLDERS = {
    "wandb_verl_aime_opd_jianghoucheng": "wandb/run-20251130_144822-gjvwlq13",
    "wandb_trl_ppo_prml_rlhf_chiswsz": "datasets/wandb/run-20260112_162800-65nc9zzs",
    "wandb_trl_grpo_kimi_audio_oziet": "wandb/latest-run",
    "wandb_v0142_colossalai_chat_480284856": "applications/Chat/examples/wandb/run-20230420_073822-clnzftry",
}


@pytest.mark.parametrize("folder", sorted(REAL_FOLDERS))
def test_the_real_wandb_folders_import(tmp_path, folder):
    path = REAL / folder / REAL_FOLDERS[folder]
    if not path.exists():
        pytest.skip(f"{path} is not here")
    assert main(["import", str(path), "--root", str(tmp_path)]) == 0
    (out,) = [p for p in tmp_path.iterdir() if (p / "run.json").exists()]
    run = diag.open_run(out)
    findings, verdict = check_run(run)
    assert verdict["ends"]
    if folder.startswith("wandb_verl"):  # verl's AIME validation: two held-out sets every 10 steps
        assert run.steps["reward_mean"].drop_nulls().len() == 58  # step 0 is the validation before training
        assert sorted(run.evals["eval_set"].unique().to_list()) == ["aime_2024", "aime_2025"]
        assert run.evals.filter(pl.col("eval_set") == "aime_2024").height == 6
    elif folder.startswith("wandb_v0142"):  # SFT, not RL: its series kept, nothing to judge
        assert run.scalars.filter(pl.col("key") == "loss").height == 78 and run.evals.height == 0
        assert "reward_mean" not in run.steps.columns or run.steps["reward_mean"].null_count() == run.steps.height
        assert {f.kind for f in findings} == {"no_data"}
    else:
        assert run.steps.height >= 1 and run.meta["framework"] == "trl"


def test_every_record_of_the_real_wandb_files_passes_its_checksum():
    files = sorted(REAL.rglob("*.wandb")) if REAL.exists() else []
    if not files:
        pytest.skip("no real .wandb files here")
    for f in files:
        sc = scan(f.read_bytes(), str(f))
        assert sc.records and not sc.damage, (f, sc.damage)


# ------------------------------------------------------------------------------------------ bad input

def test_a_damaged_or_truncated_wandb_file_keeps_what_came_before(tmp_path):
    src = next(iter(sorted(REAL.rglob("run-65nc9zzs.wandb"))), None) if REAL.exists() else None
    if src is None:
        pytest.skip("the real TRL PPO W&B file is not here")
    data = bytearray(src.read_bytes())
    whole = len(scan(bytes(data)).records)
    cut = tmp_path / "cut" / "run-x.wandb"
    cut.parent.mkdir()
    cut.write_bytes(bytes(data[: len(data) // 2 + 3]))  # torn inside a record
    sc = scan(cut.read_bytes())
    assert sc.torn_at is not None and 0 < len(sc.records) < whole and not sc.damage
    bad = tmp_path / "bad" / "run-y.wandb"
    bad.parent.mkdir()
    data[40_000] ^= 0xFF  # one flipped byte in the second block
    bad.write_bytes(bytes(data))
    sc = scan(bad.read_bytes())
    assert len(sc.damage) == 1 and sc.damage[0].startswith("byte ")
    lost = whole - len(sc.records)  # only what the damaged 32 KiB block held (this file: ~360 bytes a record)
    assert 0 < lost <= 32768 // min(len(r) for r in scan(bytes(data)).records[:200])
    _, notes = import_log(bad.parent, root=str(tmp_path / "runs"))
    assert any("damaged at byte" in n for n in notes), notes
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "run-z.wandb").write_bytes(b"not a wandb file")
    with pytest.raises(ImportFailure, match="not a W&B transaction log"):
        import_log(tmp_path / "junk" / "run-z.wandb", root=str(tmp_path / "runs"))


def test_empty_and_locked_stores_are_a_clear_error(tmp_path):
    import sqlite3

    empty = tmp_path / "tb"
    empty.mkdir()
    with pytest.raises(ImportFailure, match="no TensorBoard event files|a directory without"):
        import_log(empty, root=str(tmp_path / "runs"))
    with pytest.raises(ImportFailure, match="no TensorBoard event files"):
        import_log(empty, fmt="tensorboard", root=str(tmp_path / "runs"))
    db = tmp_path / "p.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE metrics (id INTEGER PRIMARY KEY, timestamp TEXT, run_name TEXT, step INT, metrics TEXT)")
    con.commit()
    with pytest.raises(ImportFailure, match="holds no runs with logged metrics"):
        import_log(db, root=str(tmp_path / "runs"))
    con.execute("INSERT INTO metrics VALUES (1, '0', 'r', 0, '{\"train/reward\": 0.5}')")
    con.commit()
    con.execute("BEGIN EXCLUSIVE")  # a writer holding the database
    try:
        with pytest.raises(ImportFailure, match="locked by a process writing it"):
            import_log(db, fmt="trackio", root=str(tmp_path / "runs"))
    finally:
        con.rollback()
        con.close()
    assert main(["import", str(db), "--root", str(tmp_path / "runs")]) == 0


def test_an_mlflow_run_without_metrics_is_named(tmp_path, monkeypatch):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("e")
    with mlflow.start_run(run_name="bare"):
        mlflow.log_params({"learning_rate": 1e-6})
    with pytest.raises(ImportFailure, match="'bare'.*has no metrics logged"):
        import_log(uri, root=str(tmp_path / "runs"))


def test_a_missing_tracker_library_names_the_pip_command(monkeypatch):
    from diag.importers import logged

    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(ImportFailure, match=r"pip install 'grpo-diag\[mlflow\]'"):
        logged.need("mlflow", "MLflow stores")


def test_a_saved_wandb_api_history_reads_as_a_run_folder_does(written):
    """`wandb://` runs come through W&B's public API (no network here): everything after the download is
    the run-folder path, checked on a history shaped as scan_history() returns it."""
    from diag.importers.logged import to_parsed
    from diag.importers.wandb_log import from_history, read

    tmp, _ = written
    folder, _ = source_of(tmp, "wandb", "decoupled")
    local = read(folder)
    history = [{**row, "_step": step} for step, row in local.rows]
    api = to_parsed(from_history(history, {"learning_rate": {"value": 3e-6}}, {}, "wandb://e/p/id"))
    disk = to_parsed(local)
    assert api.steps == disk.steps and api.evals == disk.evals and api.meta["learning_rate"] == 3e-6


# ------------------------------------------------------------------------------------------ live

@pytest.mark.parametrize("kind", ["wandb", "tensorboard"])
def test_watch_follows_a_tracker_while_it_is_written(tmp_path, kind):
    """A writer process logs the decoupled shape through the tracker's own callback, a row every 100 ms; the
    follower sees the run `running`, the decoupling alert reaches a local HTTP server before the writer
    ends, and the final store equals a one-shot import."""
    from diag.monitor import MonitorConfig
    from diag.watch import WatchOptions, follower_for
    from tests.test_alerts import Server
    from tests.test_watch import follow_beside

    hist = tmp_path / "dec.json"
    hist.write_text(json.dumps({"log_history": trl_history("decoupled", seed=1)}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(WRITER.parent.parent)}
    writer = subprocess.Popen([sys.executable, str(WRITER), kind, str(tmp_path / "w"), "--delay", "0.1",
                               f"trl:live={hist}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    source = tmp_path / "w" / ("wandb" if kind == "wandb" else "tb/live")
    source.mkdir(parents=True, exist_ok=True)
    server = Server()
    statuses: list[str] = []
    opts = WatchOptions(name="live", root=str(tmp_path / "runs"), interval=0.2, idle=20.0,
                        monitor=MonitorConfig(console=False, notify=(server.url,)))
    follower = follower_for(source, opts, out=open(os.devnull, "w"))
    commit = follower._commit

    def spy(parsed, final):  # the run as a dashboard sees it between polls
        commit(parsed, final)
        statuses.append(json.loads((follower.writer.path / "run.json").read_text())["status"])
    follower._commit = spy
    status, while_writing = follow_beside(follower, writer, server)
    assert writer.returncode == 0
    assert "running" in statuses
    assert while_writing, "the decoupling alert reached the HTTP server only after the writer ended"
    assert "decoupling" in json.dumps(server.received)
    run = diag.open_run(tmp_path / "runs" / "live")
    assert status in ("finished", "stale") and run.steps["step"].to_list() == list(range(1, 211))
    ref = diag.open_run(import_log(source, root=str(tmp_path / "oneshot"), name="ref")[0])
    for t in ("steps", "evals"):
        a = run.table(t).drop("wall_time", strict=False).sort(run.table(t).columns[:2])
        b = ref.table(t).drop("wall_time", strict=False).sort(ref.table(t).columns[:2])
        assert a.equals(b), f"{t} differs from the one-shot import"
    shutil.rmtree(tmp_path / "w", ignore_errors=True)


def test_tensorboards_two_readers_agree(written, monkeypatch):
    """The data server (fast, Rust) and the event accumulator (Python) read the same rows and config."""
    from diag.importers import tensorboard_log

    tmp, _ = written
    folder = tmp / "tensorboard" / "tb" / "decoupled"
    served = tensorboard_log.read(folder)
    assert any("data server" in n for n in served.notes), served.notes  # the fast reader starts here
    monkeypatch.setattr(tensorboard_log, "_served", lambda folder: None)
    accumulated = tensorboard_log.read(folder)
    assert served.rows == accumulated.rows and served.config == accumulated.config
