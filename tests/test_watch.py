"""`grpo-diag watch`: a real writer process, a follower, faults, and the store it leaves behind."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import polars as pl
import pytest

import diag
from diag.importers import import_log
from diag.watch import Follower, WatchOptions, follower_for
from diag.monitor import MonitorConfig
from tests.test_alerts import Server

MAPS = ["step=step", "reward=reward", "frac_all_fail=all_fail", "accuracy=acc"]
OPTS = {"maps": MAPS}

WRITER = textwrap.dedent("""
    import json, sys, time
    path, steps, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    with open(path, "a") as f:
        for s in range(1, steps + 1):
            row = {"step": s, "reward": 0.05, "all_fail": 0.9}
            if s % 10 == 0:
                row["acc"] = 0.1
            line = json.dumps(row) + "\\n"
            half = len(line) // 2
            f.write(line[:half]); f.flush()      # a line half written when the follower may read it
            time.sleep(pause / 2)
            f.write(line[half:]); f.flush()
            time.sleep(pause / 2)
    """)


def follow_beside(follower, writer: subprocess.Popen, server: Server) -> tuple[str, bool]:
    """Run the follower while the writer process writes; (final status, whether an alert reached the
    server while the writer was still running)."""
    seen: list[bool] = []

    def poll_server():
        while writer.poll() is None:
            if server.received:
                seen.append(True)
                return
            time.sleep(0.02)

    t = threading.Thread(target=poll_server)
    t.start()
    status = follower.run()
    t.join()
    writer.wait()
    server.close()
    return status, bool(seen)


def lines(n: int) -> list[str]:
    out = []
    for s in range(1, n + 1):
        row = {"step": s, "reward": 0.05, "all_fail": 0.9}
        if s % 10 == 0:
            row["acc"] = 0.1
        out.append(json.dumps(row))
    return out


def tables(run: diag.Run) -> dict[str, pl.DataFrame]:
    return {t: run.table(t).drop("wall_time", strict=False).sort(run.table(t).columns[:2]) for t in ("steps", "scalars", "evals")}


def same_as_import(run: diag.Run, src: Path, tmp: Path, **import_options) -> None:
    ref = diag.open_run(import_log(src, root=str(tmp / "oneshot"), name="ref", **(import_options or {"maps": MAPS}))[0])
    got, want = tables(run), tables(ref)
    for t in want:
        assert got[t].equals(want[t]), f"{t} differs from the one-shot import"


def test_follows_a_growing_log_and_alerts_before_the_writer_ends(tmp_path):
    """A writer process emits a step every 50 ms, each line in two halves; the follower delivers the
    signal-gap alert to a local HTTP server while the writer is still writing, and what it stores at the
    end equals a one-shot import of the final file, table for table."""
    src = tmp_path / "log.jsonl"
    src.write_text("")
    server = Server()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(src), "120", "0.05"])
    opts = WatchOptions(fmt="generic", name="live", root=str(tmp_path / "runs"), interval=0.1, idle=2.0,
                        import_options=OPTS, monitor=MonitorConfig(console=False, notify=(server.url,)))
    status, while_writing = follow_beside(Follower(src, opts, out=open(os.devnull, "w")), writer, server)
    assert while_writing, "the signal-gap alert reached the HTTP server only after the writer ended"
    assert "signal_gap" in json.dumps(server.received[0])
    assert status == "stale"  # a generic log has no end marker: the writer went quiet
    run = diag.open_run(tmp_path / "runs" / "live")
    assert run.status == "stale" and run.steps["step"].to_list() == list(range(1, 121))
    assert run.alerts["kind"].to_list()[0] == "signal_gap"
    same_as_import(run, src, tmp_path)


def test_total_steps_ends_a_growing_log_as_finished(tmp_path):
    """Given the run's last step, the watch ends when that step is in and a poll finds nothing after it:
    the run is `finished` (not `stale`), with every step stored, without waiting for the idle timeout."""
    src = tmp_path / "log.jsonl"
    src.write_text("")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(src), "40", "0.02"])
    opts = WatchOptions(fmt="generic", name="done", root=str(tmp_path / "runs"), interval=0.1, idle=120.0,
                        total_steps=40, import_options=OPTS, monitor=MonitorConfig(console=False))
    t0 = time.monotonic()
    status = Follower(src, opts, out=open(os.devnull, "w")).run()
    assert writer.wait(timeout=30) == 0
    assert status == "finished" and time.monotonic() - t0 < 60
    run = diag.open_run(tmp_path / "runs" / "done")
    assert run.status == "finished" and run.steps["step"].to_list() == list(range(1, 41))
    same_as_import(run, src, tmp_path)


def test_a_malformed_line_is_named_skipped_and_the_watch_goes_on(tmp_path):
    src = tmp_path / "log.jsonl"
    body = lines(30)
    body.insert(5, "{not json")
    src.write_text("\n".join(body) + "\n")
    log = tmp_path / "watch.log"
    with open(log, "w") as out:
        Follower(src, WatchOptions(fmt="generic", name="bad", root=str(tmp_path / "runs"), interval=0.01, idle=0.05,
                                   import_options=OPTS, monitor=MonitorConfig(console=False)), out=out).run()
    said = log.read_text()
    assert f"{src}: line 6 is not JSON" in said and said.count("line 6 is not JSON") == 1
    assert diag.open_run(tmp_path / "runs" / "bad").steps["step"].to_list() == list(range(1, 31))


def test_killed_and_restarted_it_resumes_without_a_step_twice(tmp_path):
    """SIGKILL mid-follow, then a new watcher on the same run: every step once, none lost."""
    src = tmp_path / "log.jsonl"
    src.write_text("")
    cmd = [sys.executable, "-m", "diag.cli", "watch", str(src), "--format", "generic", "--name", "k",
           "--root", str(tmp_path / "runs"), "--interval", "0.05", "--idle", "3", *sum((["--map", m] for m in MAPS), [])]
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(src), "200", "0.02"])
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill it once it has stored part of the run
        try:
            stored = diag.open_run(tmp_path / "runs" / "k").steps.height
        except Exception:  # noqa: BLE001 - the run may not exist yet
            stored = 0
        if stored >= 40:
            break
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    writer.wait()
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert "resumed" in second.stdout + second.stderr
    run = diag.open_run(tmp_path / "runs" / "k")
    assert run.steps["step"].to_list() == list(range(1, 201))
    assert run.evals["step"].to_list() == list(range(10, 201, 10))
    assert run.alerts.filter(pl.col("kind") == "signal_gap")["id"].n_unique() == 1  # not alerted twice
    same_as_import(run, src, tmp_path)


def test_a_trainer_state_rewritten_whole_ends_at_its_final_marker(tmp_path):
    """The Hugging Face Trainer rewrites trainer_state.json whole at each save: a half-written rewrite is
    skipped, and the run is finished when global_step reaches max_steps."""
    src = tmp_path / "trainer_state.json"
    hist: list[dict] = []

    def write(step: int, partial: bool = False):
        state = {"global_step": step, "max_steps": 30, "log_history": hist}
        text = json.dumps(state)
        src.write_text(text[: len(text) // 2] if partial else text)

    follower = Follower(src, WatchOptions(fmt="trainer-state", name="ts", root=str(tmp_path / "runs"), interval=0.01,
                                          idle=5, monitor=MonitorConfig(console=False)), out=open(os.devnull, "w"))

    def writer():
        for s in range(1, 31):
            hist.append({"step": s, "reward": 0.5, "loss": 0.1})
            if s % 10 == 0:
                hist.append({"step": s, "eval_accuracy": 0.6})
            if s % 7 == 0:
                write(s, partial=True)
                time.sleep(0.03)
            write(s)
            time.sleep(0.01)

    t = threading.Thread(target=writer)
    t.start()
    status = follower.run()
    t.join()
    assert status == "finished"
    run = diag.open_run(tmp_path / "runs" / "ts")
    assert run.status == "finished" and run.steps["step"].to_list() == list(range(1, 31))
    assert run.evals.filter(pl.col("bucket") == "all")["step"].to_list() == [10, 20, 30]


TRAINER_STATE_WRITER = textwrap.dedent("""
    import json, os, sys, time
    path, steps, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    hist = []
    for s in range(1, steps + 1):
        hist.append({"step": s, "reward": 0.02, "frac_reward_zero_std": 0.95, "loss": 0.01})
        if s % 10 == 0:
            hist.append({"step": s, "eval_accuracy": 0.05})
        text = json.dumps({"global_step": s, "max_steps": steps, "log_history": hist})
        if s % 7 == 0:  # a rewrite caught half-way, as a reader may find it
            open(path, "w").write(text[: len(text) // 2]); time.sleep(pause / 2)
        tmp = path + ".tmp"
        open(tmp, "w").write(text)
        os.replace(tmp, path)
        time.sleep(pause)
    """)


def test_follows_a_growing_trainer_state_and_alerts_before_the_writer_ends(tmp_path):
    """A writer process rewrites trainer_state.json whole at every step (sometimes caught half-written):
    the signal-gap alert reaches a local HTTP server while it still writes, the run ends `finished` at
    max_steps, and the store equals a one-shot import of the final file, table for table."""
    src = tmp_path / "trainer_state.json"
    server = Server()
    writer = subprocess.Popen([sys.executable, "-c", TRAINER_STATE_WRITER, str(src), "150", "0.03"])
    opts = WatchOptions(fmt="trainer-state", name="ts-live", root=str(tmp_path / "runs"), interval=0.05, idle=20.0,
                        monitor=MonitorConfig(console=False, notify=(server.url,)))
    status, while_writing = follow_beside(Follower(src, opts, out=open(os.devnull, "w")), writer, server)
    assert while_writing, "the signal-gap alert reached the HTTP server only after the writer ended"
    assert "signal_gap" in json.dumps(server.received[0]) and status == "finished"
    run = diag.open_run(tmp_path / "runs" / "ts-live")
    assert run.steps["step"].to_list() == list(range(1, 151))
    same_as_import(run, src, tmp_path, fmt="trainer-state")


def test_a_name_taken_by_another_run_is_refused(tmp_path):
    src = tmp_path / "log.jsonl"
    src.write_text("\n".join(lines(5)) + "\n")
    import_log(src, maps=MAPS, root=str(tmp_path / "runs"), name="taken")
    f = Follower(src, WatchOptions(fmt="generic", name="taken", root=str(tmp_path / "runs"), interval=0.01, idle=0.05,
                                   import_options=OPTS, monitor=MonitorConfig(console=False)), out=open(os.devnull, "w"))
    with pytest.raises(Exception, match="not written by a watch"):
        f.run()


def test_an_alert_cut_off_by_a_kill_is_stored_on_resume(tmp_path):
    """Killed after storing steps but before storing the alert they raise: the resumed watch, rebuilding
    the monitor from the store, stores (and sends) it then, once."""
    src = tmp_path / "log.jsonl"
    src.write_text("\n".join(lines(60)) + "\n")
    opts = dict(fmt="generic", name="cut", root=str(tmp_path / "runs"), interval=0.01, idle=0.05, import_options=OPTS,
                monitor=MonitorConfig(console=False))
    Follower(src, WatchOptions(**opts), out=open(os.devnull, "w")).run()
    alerts = tmp_path / "runs" / "cut" / "alerts"
    for seg in alerts.glob("seg-*.parquet"):
        seg.unlink()  # as if the kill came between the steps' segment and the alert's
    meta = json.loads((tmp_path / "runs" / "cut" / "run.json").read_text())
    (tmp_path / "runs" / "cut" / "run.json").write_text(json.dumps({**meta, "status": "running"}))
    Follower(src, WatchOptions(**opts), out=open(os.devnull, "w")).run()
    run = diag.open_run(tmp_path / "runs" / "cut")
    assert run.alerts.filter(pl.col("kind") == "signal_gap").height == 1
    assert run.steps["step"].to_list() == list(range(1, 61))


FIXTURES = Path(__file__).parent / "fixtures" / "verl"

REPLAY = textwrap.dedent("""
    import shutil, sys, time
    from pathlib import Path
    src, dst, pause = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    steps = sorted(int(f.stem) for f in (src / "rollout").glob("*.jsonl"))
    metrics = (src / "metrics.jsonl").read_text().splitlines(keepends=True)
    by_step = {}
    import json
    for line in metrics:
        by_step.setdefault(json.loads(line)["step"], []).append(line)
    (dst / "rollout").mkdir(parents=True); (dst / "validation").mkdir()
    with open(dst / "metrics.jsonl", "a") as m:
        for s in [0] + steps:
            if (src / "validation" / f"{s}.jsonl").exists():
                shutil.copy(src / "validation" / f"{s}.jsonl", dst / "validation" / f"{s}.jsonl")
            if s in steps:
                data = (src / "rollout" / f"{s}.jsonl").read_bytes()
                with open(dst / "rollout" / f"{s}.jsonl", "wb") as f:   # a dump written in two halves
                    f.write(data[: len(data) // 2]); f.flush(); time.sleep(pause / 2)
                    f.write(data[len(data) // 2:])
            for line in by_step.get(s, []):
                m.write(line); m.flush()
            time.sleep(pause / 2)
    """)


@pytest.mark.parametrize("trainer", ["legacy", "v1"])
def test_follows_verl_dumps_written_step_by_step(tmp_path, trainer):
    """verl 0.9's own dumps (the committed fixtures), replayed by a writer process step by step: the
    signal-gap alert reaches a local HTTP server before the writer finishes, and the store equals a
    one-shot import of the final directories, table for table."""
    out = tmp_path / "verl"
    server = Server()
    writer = subprocess.Popen([sys.executable, "-c", REPLAY, str(FIXTURES / trainer), str(out), "0.25"])
    while not (out / "rollout").exists():
        time.sleep(0.02)
    opts = WatchOptions(fmt="verl-rollouts", name="live", root=str(tmp_path / "runs"), interval=0.05, idle=2.0,
                        import_options={"validation_dir": str(out / "validation"), "metrics": str(out / "metrics.jsonl")},
                        monitor=MonitorConfig(console=False, notify=(server.url,)))
    status, while_writing = follow_beside(follower_for(out / "rollout", opts, out=open(os.devnull, "w")), writer, server)
    assert while_writing, "the alert arrived only after the writer finished"
    assert "signal_gap" in json.dumps(server.received[0]) and status == "stale"
    run = diag.open_run(tmp_path / "runs" / "live")
    ref = diag.open_run(import_log(out / "rollout", root=str(tmp_path / "oneshot"), name="ref",
                                   validation_dir=str(out / "validation"), metrics=str(out / "metrics.jsonl"))[0])
    for t_ in ("steps", "groups", "scalars", "evals", "eval_items"):
        got, want = run.table(t_), ref.table(t_)
        keep = [c for c in want.columns if c not in ("wall_time", "gen_call")]
        keys = [c for c in ("step", "mode", "group", "eval_set", "key", "item", "bucket", "metric") if c in keep]
        assert got.select(keep).sort(keys).equals(want.select(keep).sort(keys)), f"{t_} differs from the one-shot import"


def test_a_restarted_rollout_watch_resumes_from_the_store(tmp_path):
    """A watch that ended (or was stopped) on the first half of a verl run, started again once the rest is
    written, stores every step once: the groups equal a one-shot import of the whole directory."""
    src, out = FIXTURES / "legacy" / "rollout", tmp_path / "rollout"
    out.mkdir()
    for f in sorted(src.glob("*.jsonl"), key=lambda f: int(f.stem))[:15]:
        (out / f.name).write_bytes(f.read_bytes())
    opts = WatchOptions(fmt="verl-rollouts", name="r", root=str(tmp_path / "runs"), interval=0.01, idle=0.1,
                        monitor=MonitorConfig(console=False))
    follower_for(out, opts, out=open(os.devnull, "w")).run()
    for f in src.glob("*.jsonl"):
        (out / f.name).write_bytes(f.read_bytes())
    log = tmp_path / "second.log"
    with open(log, "w") as said:
        follower_for(out, opts, out=said).run()
    assert "resumed" in log.read_text()
    run = diag.open_run(tmp_path / "runs" / "r")
    ref = diag.open_run(import_log(out, root=str(tmp_path / "oneshot"), name="ref")[0])
    assert run.steps["step"].to_list() == list(range(1, 31))
    keep = ["step", "group", "G", "n_pass", "n_true", "signal", "reward_mean", "prompt_hash"]
    assert run.groups.select(keep).sort("step", "group").equals(ref.groups.select(keep).sort("step", "group"))
    assert run.alerts.filter(pl.col("kind") == "signal_gap")["id"].n_unique() == 1


def test_a_dump_that_lands_late_or_out_of_order_is_not_lost(tmp_path):
    """Step 12's dump lands after 13 and 14 (a slow write on a shared filesystem): it is still taken."""
    src, out = FIXTURES / "legacy" / "rollout", tmp_path / "rollout"
    out.mkdir()
    opts = WatchOptions(fmt="verl-rollouts", name="late", root=str(tmp_path / "runs"), interval=0.01, idle=5,
                        max_polls=1, monitor=MonitorConfig(console=False))
    follower = follower_for(out, opts, out=open(os.devnull, "w"))
    follower._tmp = tempfile.TemporaryDirectory()
    order = [s for s in range(1, 31) if s != 12]
    order.insert(order.index(14) + 1, 12)
    for s in order:
        (out / f"{s}.jsonl").write_bytes((src / f"{s}.jsonl").read_bytes())
        follower._poll(final=False)
    follower._close("stale")
    run = diag.open_run(tmp_path / "runs" / "late")
    assert sorted(run.steps["step"].to_list()) == list(range(1, 31)) and run.steps.height == 30


def test_a_log_truncated_or_replaced_keeps_what_was_stored_and_goes_on(tmp_path):
    """A JSONL log rewritten shorter (a restarted logger, a rotated file) loses nothing already stored, and
    steps written after it are taken."""
    src = tmp_path / "log.jsonl"
    src.write_text("\n".join(lines(30)) + "\n")
    opts = WatchOptions(fmt="generic", name="trunc", root=str(tmp_path / "runs"), interval=0.01, idle=5, max_polls=1,
                        import_options=OPTS, monitor=MonitorConfig(console=False))
    follower = Follower(src, opts, out=open(os.devnull, "w"))
    follower._tmp = tempfile.TemporaryDirectory()
    assert follower._changed()
    follower._poll(final=False)  # steps 1-29 stored, 30 held back (its last line may still be coming)
    later = [json.dumps({"step": s, "reward": 0.05, "all_fail": 0.9}) for s in range(31, 41)]
    src.write_text("\n".join(lines(10) + later) + "\n")
    assert follower._changed() and follower.truncated
    follower._poll(final=False)
    follower._close("stale")
    run = diag.open_run(tmp_path / "runs" / "trunc")
    assert run.steps["step"].to_list() == list(range(1, 41))
