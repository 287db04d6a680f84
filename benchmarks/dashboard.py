"""Dashboard cost on long generated runs, and the same series in Trackio, drawn in one Chromium.

Prints: time to write and open a 10,000-step x 64-group run, to compute its Run page, one live tick;
then, in headless Chromium, the time from navigation until every chart of a page is drawn (its
figure set and its SVG present) for the Run page at 10k steps, the Run page at 100k steps and the
compare page with six 10k-step runs, each as the median (and range) of `--loads` full page loads
after one warm-up load (a returning user: bundles cached, the run read), its cold first load on a
fresh server (the detectors judge the run for the first time, in the background past a second: the
charts first, `cold_s`, then the alerts, `cold_alerts_s`), and its cold load on another fresh server
after that (the findings read from beside the run: a dashboard restarted on a finished run), each cold
figure the median of COLDS fresh servers and browsers (with its maximum); and the same 10k series logged to a local Trackio project (the tracker TRL reports to),
opened in the same browser, time until its charts are drawn. Goals: 1.5 s, 3 s, 3 s; Trackio ratio < 1.

    python benchmarks/dashboard.py [--steps 10000] [--long-steps 100000] [--compare 6] [--loads 12]
                                   [--no-peer] [--json out.json]

The peer needs `pip install -e ".[peer]"` (trackio); without it that row says so.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

GOALS = {"run_page_10k": 1.5, "run_page_100k": 3.0, "compare_6_runs": 3.0}
# every chart has its figure (a title) and its SVG: drawn, not merely mounted as an empty graph
DRAWN = """const g=[...document.querySelectorAll('.js-plotly-plot')];
return g.length >= arguments[0] && g.every(e => e.layout && e.layout.title && e.layout.title.text
                                                && e.querySelector('.main-svg'))"""
# the alert list holds the findings, not the note that they are being judged (dashboards.ids.JUDGING)
ALERTS_DRAWN = "return !document.getElementById('judging') && !!document.getElementById('alerts')"
TRACKIO_DRAWN = "return document.querySelectorAll('.plot.vega-embed canvas, .plot.vega-embed svg.marks').length >= arguments[0]"


def generate(root: str, steps: int, groups: int, name: str = "long", seed: int = 0, G: int = 8, every: int = 10):
    import numpy as np

    import diag

    rng = np.random.default_rng(seed)
    rec = diag.Recorder(root, name, ["correct", "format"], group_size=G, flush_secs=5, sample_groups=1)
    n = groups * G
    p = rng.random(groups)
    prompts = [f"{i}+{i}=" for i in range(groups) for _ in range(G)]
    texts = ["42"] * n
    for s in range(1, steps + 1):
        correct = (rng.random(n) < np.repeat(p, G)).astype(float)
        r = np.stack([correct, np.full(n, 0.1)], 1)
        rec.log_batch(s, r, advantages=rng.normal(size=n), lengths=np.full(n, 4), clipped=np.zeros(n, bool),
                      passed=correct > 0, prompts=prompts, completions=texts)
        if s % every == 0:
            rec.log_eval(s, "heldout", rng.random(200) < 0.5)
    return rec


def server_side(root: str, name: str, rec, groups: int) -> dict:
    """Open, compute the Run page, and live ticks (`rec` still writing the run), in this process."""
    import numpy as np

    from dashboards import query
    from dashboards.pages import run as run_page

    store = query.Store(root)
    t = time.perf_counter()
    store.get(name)
    t_open = time.perf_counter() - t
    t = time.perf_counter()
    store.findings(name)  # judged in the call, as `check` does (a page past half a second judges in the background)
    out = run_page.render(store, name, -1)
    t_render = time.perf_counter() - t
    ticks, idle = [], []
    last = int(store.get(name).run.steps["step"].max())
    for i in range(5):
        rec.log_batch(last + 1 + i, np.zeros((groups * 8, 2)))
        rec.flush()
        t = time.perf_counter()
        out = run_page.render(store, name, out["version"])
        ticks.append(time.perf_counter() - t)
    for _ in range(5):
        t = time.perf_counter()
        assert run_page.render(store, name, out["version"]) is None
        idle.append(time.perf_counter() - t)
    # a new evaluation makes the page judge the run again: only the new evaluation (DecouplingReplay)
    rng, new_eval = np.random.default_rng(7), []
    for i in range(3):
        step = last + 5 + 10 * (i + 1)
        rec.log_batch(step, np.zeros((groups * 8, 2)))
        rec.log_eval(step, "heldout", rng.random(200) < 0.5)
        rec.flush()
        t = time.perf_counter()
        out = run_page.render(store, name, out["version"])
        new_eval.append(time.perf_counter() - t)
    return {"open_run_s": t_open, "run_page_compute_s": t_render,
            "live_tick_new_step_s": statistics.median(ticks),
            "live_tick_new_eval_s": statistics.median(new_eval),
            "live_tick_idle_s": statistics.median(idle)}


def _wait(d, script: str, count: int, limit: float = 120, every: float = 0.01) -> float:
    t = time.perf_counter()
    while not d.execute_script(script, count):
        if time.perf_counter() - t > limit:
            raise TimeoutError("charts did not draw")
        time.sleep(every)
    return time.perf_counter() - t


def _loads(d, url: str, script: str, count: int, loads: int, alerts: bool = False) -> dict:
    """The first load (cold), then `loads` full navigations to `url`: median and range until drawn. With
    `alerts`, the cold load also says when the alerts were drawn (a run judged for the first time is drawn
    at once and judged in the background), and the warm loads start after that."""
    def once() -> float:
        t = time.perf_counter()
        d.get(url)
        _wait(d, script, count)
        return time.perf_counter() - t

    t = time.perf_counter()
    cold = once()
    out = {"cold_s": cold}
    if alerts:
        _wait(d, ALERTS_DRAWN, 0, limit=600, every=1.0)
        out["cold_alerts_s"] = time.perf_counter() - t
    times = [once() for _ in range(loads)]
    if not times:
        return out
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), **out}


@contextmanager
def dashboard_process(root: str):
    """`grpo-diag dashboard` on a free 127.0.0.1 port in a process of its own, as a user starts it (its
    start-up is not timed: a page is opened once it answers); yields its base URL, stops it on exit."""
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = "import sys; from dashboards.app import serve; serve(sys.argv[1], port=int(sys.argv[2]))"
    proc = subprocess.Popen([sys.executable, "-c", code, root, str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        t = time.perf_counter()
        while True:
            try:
                urllib.request.urlopen(base + "/_dash-layout", timeout=5).read()
                break
            except OSError:
                if proc.poll() is not None or time.perf_counter() - t > 120:
                    raise RuntimeError("the dashboard did not start")
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


def page_times(root: str, path: str, charts: int, loads: int) -> dict:
    """Cold first load on a fresh server process and browser, then `loads` full navigations (median, range)."""
    from dashboards.screenshots import driver

    d = driver(1300, 1800)
    try:
        with dashboard_process(root) as base:
            return _loads(d, base + path, DRAWN, charts, loads, alerts=path.startswith("/run/"))
    finally:
        d.quit()


COLDS = 3  # cold loads per page, each on a fresh server and browser: one such load is one noisy draw


def cold_and_warm(root: str, path: str, charts: int, loads: int) -> dict:
    """A page's cold first loads (the run's findings removed before each: judged for the first time), its
    warm loads after the last of them, and its cold loads on fresh servers reading the findings kept
    beside the run (a dashboard restarted on a finished run): medians of COLDS each, with their range."""
    from diag.detect import cache

    run_dir = Path(root) / path.split("/")[2] if path.startswith("/run/") else None
    firsts = []
    for i in range(COLDS):
        if run_dir is not None:
            (run_dir / cache.FILE).unlink(missing_ok=True)
        firsts.append(page_times(root, path, charts, loads if i == COLDS - 1 else 0))
    reopens = [page_times(root, path, charts, 0)["cold_s"] for _ in range(COLDS)]
    got = {k: v for k, v in firsts[-1].items() if not k.startswith("cold")}
    for k in ("cold_s", "cold_alerts_s"):
        vals = [f[k] for f in firsts if k in f]
        if vals:
            got[k], got[k.replace("_s", "_max_s")] = statistics.median(vals), max(vals)
    got["cold_reopen_s"], got["cold_reopen_max_s"] = statistics.median(reopens), max(reopens)
    return got


def trackio_times(run_dir: str, loads: int) -> dict | str:
    """The run's per-step series and held-out accuracy logged to a local Trackio project, then its
    dashboard opened in the same headless Chromium: time until every chart is drawn."""
    # a fresh, empty Trackio store each time, set before trackio is imported (it reads the directory then):
    # a project that kept the runs of earlier benchmarks would draw them all and time more than this run
    os.environ["TRACKIO_DIR"] = tempfile.mkdtemp(prefix="grpo-diag-trackio-")
    try:
        import trackio
    except ImportError:
        return 'not measured: trackio is not installed (pip install -e ".[peer]")'
    import diag
    from dashboards.screenshots import driver
    from diag.summary import accuracy_series, once_per_step

    run = diag.open_run(run_dir)
    cols = ["reward_mean", "frac_all_fail", "frac_all_pass", "frac_tied", "adv_var_mean", "effective_batch",
            "len_mean", "frac_clipped"]
    acc = dict(accuracy_series(run.evals).select("step", "value").iter_rows())
    trackio.init(project="grpo-diag-bench", name=run.name)
    for row in once_per_step(run.steps).select("step", *cols).iter_rows(named=True):
        logged = {k: row[k] for k in cols}
        if row["step"] in acc:
            logged["heldout_accuracy"] = acc[row["step"]]
        trackio.log(logged, step=row["step"])
    trackio.finish()
    charts = len(cols) + 1
    server, _, _, url = trackio.show(project="grpo-diag-bench", open_browser=False, block_thread=False,
                                     host="127.0.0.1")
    d = driver(1300, 1800)
    try:
        return {**_loads(d, url, TRACKIO_DRAWN, charts, loads), "version": trackio.__version__}
    finally:
        d.quit()
        server.close()


def measure(steps: int, groups: int, long_steps: int, compare: int, loads: int, peer: bool) -> dict:
    root = tempfile.mkdtemp(prefix="grpo-diag-dash-")
    t = time.perf_counter()
    rec = generate(root, steps, groups, name="run-0")
    rec.flush()
    out: dict = {"steps": steps, "groups_per_step": groups, "group_rows": steps * groups,
                 "write_run_s": time.perf_counter() - t}
    out.update(server_side(root, "run-0", rec, groups))
    rec.close()
    for i in range(1, compare):  # distinct runs (seeds), so nothing is shared between their series
        generate(root, steps, groups, name=f"run-{i}", seed=i).close()
    pages = {"run_page_10k": (root, "/run/run-0", 6)}
    if compare:
        pages["compare_6_runs"] = (root, "/compare?runs=" + ",".join(f"run-{i}" for i in range(compare)), 1)
    if long_steps:
        long_root = tempfile.mkdtemp(prefix="grpo-diag-dash-long-")
        t = time.perf_counter()
        generate(long_root, long_steps, groups, name="long").close()
        out["write_long_run_s"] = time.perf_counter() - t
        pages["run_page_100k"] = (long_root, "/run/long", 6)
    for key, (r, path, charts) in pages.items():
        try:
            got = cold_and_warm(r, path, charts, loads)
        except Exception as e:  # noqa: BLE001 - the figures above still stand without a browser
            out[key] = f"not measured: {e}"
            continue
        for k, v in got.items():
            out[f"{key}_{k}"] = v
        out[f"{key}_goal_s"] = GOALS[key]
    if peer:
        got = trackio_times(os.path.join(root, "run-0"), loads)
        if isinstance(got, str):
            out["trackio"] = got
        else:
            for k, v in got.items():
                out[f"trackio_{k}"] = v
            if isinstance(out.get("run_page_10k_median_s"), float):
                out["run_page_10k_over_trackio"] = out["run_page_10k_median_s"] / got["median_s"]
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--groups", type=int, default=64)
    p.add_argument("--long-steps", type=int, default=100_000, help="0 skips the long run")
    p.add_argument("--compare", type=int, default=6, help="runs on the compare page (0 skips it)")
    p.add_argument("--loads", type=int, default=12)
    p.add_argument("--no-peer", action="store_true", help="skip the Trackio measurement")
    p.add_argument("--json")
    p.add_argument("--record", action="store_true", help="keep the figures in benchmarks/results.json")
    p.add_argument("--entry", default="dashboard", help="the results file's entry to record as (default dashboard)")
    a = p.parse_args(argv)
    from benchmarks.common import report

    return report(measure(a.steps, a.groups, a.long_steps, a.compare, a.loads, not a.no_peer), a.json,
                  record_as=a.entry if a.record else None)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
