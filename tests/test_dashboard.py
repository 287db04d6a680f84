"""Dashboard: query layer, figures and callbacks as plain functions (no browser)."""

import numpy as np
import plotly.graph_objects as go
import polars as pl
import pytest

import diag
from dashboards import ids, query
from diag import figures
from dashboards.app import create_app, is_loopback, page_for
from dashboards.pages import compare, run as run_page


def make_run(root, name="r", steps=30, script=False):
    rec = diag.Recorder(str(root), name, ["correct", "format"], group_size=4, flush_secs=0)
    rng = np.random.default_rng(0)
    for s in range(1, steps + 1):
        r = np.stack([(rng.random(16) < 0.4).astype(float), np.full(16, 0.1)], 1)
        texts = ["<script>alert(1)</script>" if script else f"c{i}" for i in range(16)]
        rec.log_batch(s, r, advantages=rng.normal(size=16), passed=r[:, 0] > 0, lengths=np.full(16, 3),
                      clipped=np.zeros(16, bool), prompts=[f"p{i // 4}" for i in range(16)], completions=texts)
        if s % 10 == 0:
            rec.log_eval(s, "heldout", rng.random(50) < 0.5, buckets=["easy", "hard"] * 25)
    return rec


@pytest.mark.parametrize("bad", ["..", "../etc", "a/../../x", "%2e%2e", "..%2Fx", "x/y", "<script>", ".", ""])
def test_resolve_run_refuses_paths_outside_root(tmp_path, bad):
    make_run(tmp_path).close()
    with pytest.raises(query.NotFound):
        query.resolve_run(tmp_path, bad)


def test_resolve_run_refuses_symlink_out(tmp_path):
    outside = tmp_path / "outside"
    make_run(outside, "secret").close()
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside / "secret")
    with pytest.raises(query.NotFound):
        query.resolve_run(root, "link")


def test_store_refresh_is_incremental(tmp_path):
    rec = make_run(tmp_path, steps=5)
    store = query.Store(tmp_path)
    c = store.get("r")
    v0, n0 = c.version, c.run.steps.height
    assert store.get("r").version == v0  # nothing new
    for s in range(6, 9):
        rec.log_batch(s, np.zeros((16, 2)))
    c = store.get("r")
    assert c.version == v0 + 1 and c.run.steps.height == n0 + 3
    rec.close()


def test_runs_table_rows(tmp_path):
    make_run(tmp_path, "a").close()
    rows = query.Store(tmp_path).runs_table()
    assert rows[0]["run"] == "a" and rows[0]["status"] == "finished" and rows[0]["steps"] == 30


def test_figures_are_pure_and_complete(tmp_path):
    make_run(tmp_path).close()
    run = diag.open_run(tmp_path / "r")
    f = figures.reward_vs_accuracy(run.steps, run.evals, run.reward_funcs,
                                   [{"kind": "decoupling", "window_start": 10, "window_end": 20, "onset": 10}])
    names = [t.name for t in f.data]
    assert names[:3] == ["reward (total)", "reward: correct", "reward: format"] and "held-out accuracy" in names
    assert any(s["type"] == "path" and s["path"] == "M10,0 H20 V1 H10 Z" for s in f.layout.shapes)  # the window
    assert any(s["type"] == "path" and s["path"] == "M10,0 V1" for s in f.layout.shapes)  # the onset
    sig = figures.signal_area(run.steps)
    assert [t.name for t in sig.data] == ["all_fail", "all_pass", "tied", "mixed (learning signal)"]
    stacked = np.sum([np.asarray(t.y) for t in sig.data], axis=0)
    assert np.allclose(stacked, 1.0)
    assert isinstance(figures.group_heatmap(run.groups), go.Figure)
    assert {t.name for t in figures.buckets_fig(run.evals).data} == {"easy", "hard"}
    assert figures.signal_counts(run.groups)["mixed"] + figures.signal_counts(run.groups)["all_fail"] > 0


def test_long_runs_are_thinned_for_drawing():
    df = pl.DataFrame({"step": np.arange(100_000), "reward_mean": np.zeros(100_000)})
    f = figures.reward_vs_accuracy(df, pl.DataFrame(), ["r"])
    assert len(f.data[0].x) <= figures.MAX_POINTS


def test_run_page_callback_renders_once_per_change(tmp_path):
    rec = make_run(tmp_path, steps=10)
    store = query.Store(tmp_path)
    out = run_page.render(store, "r", -1)
    assert len(out["figs"]) == len(run_page.GRAPHS)
    assert run_page.render(store, "r", out["version"]) is None  # nothing new: no redraw
    rec.log_batch(11, np.zeros((16, 2)))
    again = run_page.render(store, "r", out["version"])
    assert again is not None and max(again["figs"][0].data[0].x) == 11
    rec.close()


def test_findings_are_kept_beside_the_run_for_the_next_process(tmp_path, monkeypatch):
    """A fresh process (a new Store) opening a run the last one judged reads its findings from
    findings.json instead of replaying the detectors; a run that grew, another held-out set, or a file
    whose key does not match is judged again."""
    import json

    from diag.detect import cache

    rec = make_run(tmp_path, steps=60)
    rec.close()
    first = query.Store(tmp_path).findings("r")
    assert (tmp_path / "r" / cache.FILE).is_file()

    def replay(*a, **k):
        raise AssertionError("the detectors ran again")
    monkeypatch.setattr(query, "detect_all", replay)
    assert query.Store(tmp_path).findings("r") == json.loads(json.dumps(first))
    with pytest.raises(AssertionError, match="ran again"):
        query.Store(tmp_path).findings("r", eval_set="heldout")  # another key
    stored = json.loads((tmp_path / "r" / cache.FILE).read_text())
    stored["key"]["code"] = "older"
    (tmp_path / "r" / cache.FILE).write_text(json.dumps(stored))
    with pytest.raises(AssertionError, match="ran again"):
        query.Store(tmp_path).findings("r")
    monkeypatch.undo()
    query.Store(tmp_path).findings("r")  # judged again with the current code: stored
    make_run(tmp_path, name="grown", steps=61).close()  # the same run one step longer
    (tmp_path / "grown" / cache.FILE).write_bytes((tmp_path / "r" / cache.FILE).read_bytes())
    assert cache.load(diag.open_run(tmp_path / "grown"), None) is None
    assert cache.load(diag.open_run(tmp_path / "r"), None) is not None


def test_completions_are_data_not_markup(tmp_path):
    make_run(tmp_path, script=True).close()
    rows = run_page.completion_rows(diag.open_run(tmp_path / "r"), "all")
    assert rows and rows[0]["completion"] == "<script>alert(1)</script>"
    assert all(r["signal"] == "mixed" for r in run_page.completion_rows(diag.open_run(tmp_path / "r"), "mixed"))


def test_rewarded_but_untrue_filter_and_the_truth_rate_trace(tmp_path):
    rec = diag.Recorder(str(tmp_path), "t", ["lenient"], group_size=4, flush_secs=0, sample_groups=4)
    rewards = np.array([1.0, 0.5, 0.0, 1.0] * 4)
    truth = [True, False, False, False] * 4
    for s in (1, 2):
        rec.log_batch(s, rewards, truth=truth, prompts=[f"p{i // 4}" for i in range(16)],
                      completions=[f"c{i}" for i in range(16)])
    rec.close()
    run = diag.open_run(tmp_path / "t")
    rows = run_page.completion_rows(run, query.REWARDED_UNTRUE)
    assert rows and all(r["truth"] == "untrue" and r["reward"] > 0 for r in rows)
    assert len(rows) == 2 * 4 * 2  # two paid-but-untrue completions per group, four groups, two steps
    fig = figures.reward_vs_accuracy(run.steps, run.evals, run.reward_funcs)
    trace = next(t for t in fig.data if t.name == "truth rate (training completions)")
    assert list(trace.y) == [0.25, 0.25]


def test_routing(tmp_path):
    make_run(tmp_path).close()
    store = query.Store(tmp_path)
    assert "Runs" in str(page_for(store, "/"))
    assert ids.RUN_NAME in str(page_for(store, "/run/r"))
    assert "Run not found" in str(page_for(store, "/run/..%2F..%2Fetc"))
    assert "Run not found" in str(page_for(store, "/run/../../etc/passwd"))
    assert "Compare runs" in str(page_for(store, "/compare", "?runs=r"))
    assert "no page at" in str(page_for(store, "/nope"))


def test_compare_by_samples(tmp_path):
    make_run(tmp_path, "a").close()
    make_run(tmp_path, "b", steps=20).close()
    fig = compare.figure(query.Store(tmp_path), ["a", "b", "missing"], "samples")
    acc = [t for t in fig.data if t.name in ("a", "b")]
    assert len(acc) == 2 and max(acc[0].x) == 30 * 16  # 16 completions per step


def test_token_protects_every_request(tmp_path):
    make_run(tmp_path).close()
    app = create_app(tmp_path, token="s3cret")
    client = app.server.test_client()
    assert client.get("/").status_code == 403
    assert client.get("/_dash-layout").status_code == 403
    ok = client.get("/?token=s3cret")
    assert ok.status_code == 200
    assert client.get("/_dash-layout").status_code == 200  # the cookie carries it from now on
    assert create_app(tmp_path).server.test_client().get("/").status_code == 200


def test_default_bind_is_loopback():
    import inspect

    from dashboards import app, cli

    assert inspect.signature(app.serve).parameters["host"].default == "127.0.0.1"
    import argparse

    sub = argparse.ArgumentParser().add_subparsers()
    cli.register(sub)
    assert sub.choices["dashboard"].parse_args([]).host == "127.0.0.1"
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")


def test_no_file_serving_outside_root(tmp_path):
    make_run(tmp_path).close()
    client = create_app(tmp_path).server.test_client()
    for url in ("/../run.json", "/run/r/run.json", "/assets/../../etc/passwd", "/r/run.json", "/_dash-component-suites/../../x"):
        r = client.get(url)
        assert b"schema_version" not in r.data and b"root:" not in r.data


def test_invalid_rewards_are_shown(tmp_path):
    rec = diag.Recorder(str(tmp_path), "bad", ["r"], group_size=4, flush_secs=0)
    rec.log_batch(1, [[1.0], [None], [float("nan")], [float("inf")], [0.0], [1.0], [0.0]])
    rec.close()
    out = run_page.render(query.Store(tmp_path), "bad", -1)
    assert "3 completions had a NaN, infinite or missing reward" in str(out["header"])


def test_first_judgement_past_a_moment_runs_in_the_background(tmp_path, monkeypatch):
    """A run judged for the first time with more than QUICK_EVAL_ROWS evaluation rows is drawn without
    alerts and a note saying they are being judged; the page stays put (no redraw) while they are, and
    draws them once they are in. Naming the first held-out set is the default judgement, not another."""
    import threading

    make_run(tmp_path, steps=60).close()
    gate = threading.Event()
    real = query.detect_all

    def slow(*a, **k):  # the real detectors, after the page was drawn: a long run's judgement
        gate.wait(30)
        return real(*a, **k)
    monkeypatch.setattr(query, "QUICK_EVAL_ROWS", 0)
    monkeypatch.setattr(query, "JUDGE_DELAY_S", 0.0)
    monkeypatch.setattr(query, "detect_all", slow)
    store = query.Store(tmp_path)
    before = threading.active_count()
    first = run_page.render(store, "r", -1)
    assert first["version"] == run_page.PENDING and store.judging("r")
    assert first["alerts"][0].id == ids.JUDGING and "for the first time" in first["alerts"][0].children
    assert len(first["figs"]) == len(run_page.GRAPHS)
    assert run_page.render(store, "r", first["version"]) is None  # still judging: nothing redrawn
    again = run_page.render(store, "r", -1, "heldout")  # the eval-set box naming the first set: no second judgement
    assert again["version"] == run_page.PENDING and threading.active_count() == before + 1
    assert store.runs_table()[0]["alerts"] == query.JUDGING_SHORT
    gate.set()
    for _ in range(300):
        if not store.judging("r"):
            break
        threading.Event().wait(0.1)
    done = run_page.render(store, "r", first["version"])
    assert done is not None and done["version"] == 0
    assert done["alerts"] and all(getattr(a, "id", None) != ids.JUDGING for a in done["alerts"])
    assert store.findings("r") == query.Store(tmp_path).findings("r")  # kept beside the run as well


def test_a_run_judged_from_its_route_is_drawn_with_its_alerts(tmp_path, monkeypatch):
    """Opening a run's page starts its first judgement as the route is answered; the page's drawing waits
    for that judgement (the same one, not a second) and is drawn with its alerts, never with the note."""
    import threading

    from dashboards.app import page_for

    make_run(tmp_path, steps=60).close()
    gate, calls, real = threading.Event(), [], query.detect_all

    def slow(*a, **k):  # the real detectors, held until the page asks for its drawing
        calls.append(1)
        gate.wait(30)
        return real(*a, **k)
    monkeypatch.setattr(query, "detect_all", slow)
    store = query.Store(tmp_path)
    page_for(store, "/run/r")
    assert store.judging("r")
    threading.Timer(0.3, gate.set).start()
    out = run_page.render(store, "r", -1)
    assert out["version"] == 0 and out["alerts"]
    assert all(getattr(a, "id", None) != ids.JUDGING for a in out["alerts"]) and len(calls) == 1


def test_a_run_pages_own_request_starts_its_judgement(tmp_path, monkeypatch):
    """The browser's request for /run/<name> starts the judgement (before Dash's bundles load and the route
    callback runs); a refused token, another page, a missing or outside name start nothing and answer as before."""
    import threading

    make_run(tmp_path, steps=60).close()
    gate, calls, real = threading.Event(), [], query.detect_all

    def held(*a, **k):
        calls.append(1)
        gate.wait(30)
        return real(*a, **k)
    monkeypatch.setattr(query, "detect_all", held)
    app = create_app(tmp_path, token="s3cret")
    store = app.store
    client = app.server.test_client()
    assert client.get("/run/r").status_code == 403 and not store.judging("r")  # the token check comes first
    for url in ("/?token=s3cret", "/run/r/prompts", "/run/missing", "/run/../../etc", "/compare"):
        assert client.get(url).status_code in (200, 404)
    assert not store.judging("r") and not calls
    assert client.get("/run/r").status_code == 200
    assert store.judging("r")
    gate.set()
    out = run_page.render(store, "r", -1)
    assert out["alerts"] and len(calls) == 1  # the drawing took that judgement's findings, not a second one
