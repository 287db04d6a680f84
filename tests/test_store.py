"""Run store: atomic segments, live reads, schema checks, crash status, bad input."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import polars as pl
import pytest

import diag
from diag import schema
from diag.store import StoreError, _live_segments, check_run_name, effective_status


def _rec(tmp_path, name="r", **kw):
    return diag.Recorder(str(tmp_path), name, ["correct", "format"], group_size=4, **kw)


def _batch(rec, step, p=0.5, seed=0):
    rng = np.random.default_rng(seed + step)
    r = np.stack([(rng.random(16) < p).astype(float), np.full(16, 0.1)], axis=1)
    return rec.log_batch(step, r, advantages=rng.normal(size=16), passed=r[:, 0] > 0,
                         prompts=[f"p{i // 4}" for i in range(16)], completions=[f"c{i}" for i in range(16)])


def test_roundtrip_columns(tmp_path):
    rec = _rec(tmp_path)
    for s in range(1, 4):
        _batch(rec, s)
    rec.log_eval(3, "heldout", [True, False, True, True], buckets=["easy", "hard", "easy", "hard"])
    rec.log_scalars(3, {"loss": 0.1, "kl": 0.01, "note": "skip me"})
    rec.close()
    run = diag.open_run(tmp_path / "r")
    assert run.status == "finished"
    for col in ("step", "reward_mean", "frac_zero_signal", "frac_all_fail", "frac_all_pass", "adv_var_mean"):
        assert col in run.steps.columns
    for col in ("step", "mode", "group", "signal", "reward_mean", "reward_std", "adv_var"):
        assert col in run.groups.columns
    for col in ("step", "eval_set", "metric", "value", "n"):
        assert col in run.evals.columns
    for col in ("step", "kind", "severity", "message"):
        assert col in run.alerts.columns
    assert run.steps["step"].to_list() == [1, 2, 3]
    assert run.groups.height == 12
    assert run.steps.filter(pl.col("step") == 3)["loss"][0] == pytest.approx(0.1)
    ev = run.evals.filter(pl.col("bucket") == "all")
    assert ev["value"][0] == pytest.approx(0.75) and ev["n"][0] == 4
    assert set(run.evals["bucket"]) == {"all", "easy", "hard"}
    assert run.eval_items.height == 4
    # bounded sample: 2 groups of 4 per batch
    assert run.completions.height == 3 * 2 * 4
    meta = json.loads((tmp_path / "r" / "run.json").read_text())
    assert meta["reward_funcs"] == ["correct", "format"] and meta["schema_version"] == schema.SCHEMA_VERSION


def test_parquet_files_open_with_any_tool(tmp_path):
    import pyarrow.parquet as pq

    rec = _rec(tmp_path)
    _batch(rec, 1)
    rec.close()
    files = list((tmp_path / "r" / "groups").glob("*.parquet"))
    assert files and pq.read_table(files[0]).num_rows == 4


def test_live_reader_sees_only_new_segments(tmp_path):
    rec = _rec(tmp_path, flush_secs=0)
    _batch(rec, 1)
    run = diag.open_run(tmp_path / "r")
    assert run.steps.height == 1 and run.status == "running"
    _batch(rec, 2)
    _batch(rec, 3)
    added = run.refresh()
    assert added["steps"] == 2 and run.steps["step"].to_list() == [1, 2, 3]
    assert run.refresh()["steps"] == 0
    rec.close()  # compaction: readers must not double count
    run.refresh()
    assert run.steps["step"].to_list() == [1, 2, 3]
    assert diag.open_run(tmp_path / "r").steps["step"].to_list() == [1, 2, 3]


def test_covered_segments_skipped(tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    for name in ("seg-000001-000001.parquet", "seg-000002-000002.parquet", "seg-000001-000002.parquet",
                 "seg-000003-000003.parquet", ".seg-000004-000004.parquet.tmp"):
        (folder / name).write_bytes(b"")
    live = [p.name for _, _, p in _live_segments(folder)]
    assert live == ["seg-000001-000002.parquet", "seg-000003-000003.parquet"]


def test_unflushed_rows_are_buffered_and_flushed_on_close(tmp_path):
    rec = _rec(tmp_path, flush_secs=3600)
    _batch(rec, 1)
    assert diag.open_run(tmp_path / "r").steps.height == 0
    rec.close()
    assert diag.open_run(tmp_path / "r").steps.height == 1


def test_context_manager_marks_crash(tmp_path):
    with pytest.raises(RuntimeError):
        with _rec(tmp_path) as rec:
            _batch(rec, 1)
            raise RuntimeError("boom")
    run = diag.open_run(tmp_path / "r")
    assert run.status == "crashed" and "boom" in run.meta["error"]
    assert run.steps.height == 1


def test_sigkill_leaves_flushed_steps_and_shows_crashed(tmp_path):
    code = f"""
import numpy as np, diag, time, sys
rec = diag.Recorder({str(tmp_path)!r}, "k", ["c"], group_size=4, flush_secs=0)
for s in range(1, 1000):
    rec.log_batch(s, np.ones(8) * (s % 2))
    if s == 20:
        print("ready", flush=True)
    time.sleep(0.005)
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = diag.open_run(tmp_path / "k")
    steps = run.steps["step"].to_list()
    assert len(steps) >= 20 and steps == sorted(set(steps)) and steps == list(range(1, len(steps) + 1))
    assert run.status == "crashed"


def test_stale_heartbeat_from_another_host_is_crashed():
    meta = {"status": "running", "host": "elsewhere", "pid": 1, "heartbeat": time.time() - 3600}
    assert effective_status(meta) == "crashed"
    meta["heartbeat"] = time.time()
    assert effective_status(meta) == "running"


def test_existing_run_name_refused_unless_overwrite(tmp_path):
    _rec(tmp_path).close()
    with pytest.raises(StoreError, match="already exists"):
        _rec(tmp_path)
    rec = _rec(tmp_path, overwrite=True)
    rec.close()
    assert diag.open_run(tmp_path / "r").steps.height == 0


@pytest.mark.parametrize("bad", ["", "..", "../x", "a/b", "<script>", "a" * 200, ".hidden", "a\\b", "x%2Fy"])
def test_run_names_are_checked(bad):
    with pytest.raises(ValueError, match="invalid run name"):
        check_run_name(bad)


def test_mismatched_reward_columns_named(tmp_path):
    rec = _rec(tmp_path)
    with pytest.raises(ValueError, match=r"1 function column\(s\) but the run declares \['correct', 'format'\]"):
        rec.log_batch(1, np.zeros((8, 1)))
    with pytest.raises(ValueError, match="advantages has 3 entries for 8 completions"):
        rec.log_batch(1, np.zeros((8, 2)), advantages=[0, 0, 0])
    rec.close()


def test_not_a_run_and_newer_schema_errors(tmp_path):
    with pytest.raises(StoreError, match="not a grpo-diag run"):
        diag.open_run(tmp_path)
    rec = _rec(tmp_path)
    rec.close()
    meta = json.loads((tmp_path / "r" / "run.json").read_text())
    meta["schema_version"] = 99
    (tmp_path / "r" / "run.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="'schema_version' is 99"):
        diag.open_run(tmp_path / "r")


def test_foreign_segment_named_in_error(tmp_path):
    rec = _rec(tmp_path)
    _batch(rec, 1)
    rec.close()
    pl.DataFrame({"step": [1]}).write_parquet(tmp_path / "r" / "steps" / "seg-000100-000100.parquet")
    with pytest.raises(schema.SchemaError, match=r"seg-000100-000100.parquet: table 'steps' lacks column"):
        diag.open_run(tmp_path / "r")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_directory_keeps_training(tmp_path):
    rec = _rec(tmp_path, flush_secs=0)
    _batch(rec, 1)
    os.chmod(tmp_path / "r" / "steps", 0o500)
    try:
        _batch(rec, 2)  # warns, keeps rows buffered
    finally:
        os.chmod(tmp_path / "r" / "steps", 0o700)
    _batch(rec, 3)
    rec.close()
    assert diag.open_run(tmp_path / "r").steps["step"].to_list() == [1, 2, 3]


def test_write_failure_keeps_rows_and_retries(tmp_path, monkeypatch, capsys):
    rec = _rec(tmp_path, flush_secs=0)
    _batch(rec, 1)
    real = pl.DataFrame.write_parquet
    calls = {"n": 0}

    def failing(self, path, *a, **k):
        calls["n"] += 1
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", failing)
    _batch(rec, 2)
    assert "No space left on device" in capsys.readouterr().err
    monkeypatch.setattr(pl.DataFrame, "write_parquet", real)
    _batch(rec, 3)
    rec.close()
    assert calls["n"] >= 1
    assert diag.open_run(tmp_path / "r").steps["step"].to_list() == [1, 2, 3]


def test_write_failure_can_stop_training(tmp_path, monkeypatch):
    from diag.store import StoreError

    rec = _rec(tmp_path, flush_secs=0, on_write_error="raise")

    def failing(self, path, *a, **k):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", failing)
    with pytest.raises(StoreError, match="Read-only file system"):
        _batch(rec, 1)


def test_reader_during_writes_never_sees_partial_segments(tmp_path):
    """A writer flushing a segment per batch in one thread, readers opening and refreshing in another:
    every read is a gap-free prefix of the steps written, and no read fails."""
    import threading

    rec = _rec(tmp_path, flush_secs=0)
    _batch(rec, 1)
    done = threading.Event()

    def writer():
        for s in range(2, 301):
            _batch(rec, s)
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    live = diag.open_run(tmp_path / "r")
    reads = 0
    while not done.is_set() or reads < 5:
        fresh = diag.open_run(tmp_path / "r").steps["step"].to_list()
        assert fresh == list(range(1, len(fresh) + 1))
        live.refresh()
        seen = live.steps["step"].to_list()
        assert seen == list(range(1, len(seen) + 1))
        reads += 1
    t.join()
    rec.close()  # compaction while a reader holds the old segments
    live.refresh()
    assert live.steps["step"].to_list() == list(range(1, 301))
    assert reads >= 5


def test_groups_read_when_asked_and_some_columns_alone(tmp_path):
    """A run opens without reading its groups table (a long run's largest); a page's narrow read equals the
    same columns of the whole table, follows new segments and a compaction, and the row count is known
    from the Parquet footers before any read."""
    rec = _rec(tmp_path, flush_secs=0)
    for s in (1, 2):
        _batch(rec, s)
    run = diag.open_run(tmp_path / "r")
    assert "groups" in run._unread and run.rows("groups") == 8
    cols = ["step", "group", "mode", "reward_std"]
    assert run.columns("groups", cols).shape == (8, 4) and "groups" in run._unread
    _batch(rec, 3)
    assert run.refresh()["groups"] > 0  # something new, though nothing was read
    narrow = run.columns("groups", cols)
    assert narrow["step"].to_list() == [1] * 4 + [2] * 4 + [3] * 4
    rec.close()  # compaction: the narrow read starts again and counts each row once
    run.refresh()
    assert run.columns("groups", cols).sort(["step", "group"]).equals(run.groups.select(cols).sort(["step", "group"]))
    assert "groups" not in run._unread and run.rows("groups") == run.groups.height == 12
    assert run.columns("groups", cols).shape == (12, 4)  # read from memory now


def test_a_narrower_read_is_served_from_a_wider_one(tmp_path, monkeypatch):
    """Columns kept for a wider request (a run page reads the heatmap's and the detectors' at once) serve a
    narrower one without reading a segment again, and the new segments still arrive in both."""
    import diag.store as store_mod

    rec = _rec(tmp_path, flush_secs=0)
    for s in (1, 2):
        _batch(rec, s)
    run = diag.open_run(tmp_path / "r")
    wide = ["step", "group", "mode", "reward_std", "n_pass", "G"]
    run.columns("groups", wide)
    reads, real = [], store_mod._read_segment
    monkeypatch.setattr(store_mod, "_read_segment", lambda *a, **k: reads.append(a[1]) or real(*a, **k))
    narrow = run.columns("groups", ["mode", "n_pass", "G"])
    assert not reads and narrow.equals(run.columns("groups", wide).select("mode", "n_pass", "G"))
    _batch(rec, 3)
    run.refresh()
    assert run.columns("groups", ["n_pass", "step"])["step"].to_list() == [1] * 4 + [2] * 4 + [3] * 4
    assert [p.parent.name for p in reads].count("groups") == 1  # its one new segment, once
    rec.close()
