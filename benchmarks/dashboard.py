"""Dashboard cost on a long generated run (10,000 steps x 64 groups by default).

Prints: time to write the run, to open it (query layer), to compute the Run page (figures + offline
detectors), the time until the Run page has drawn its six graphs in headless Chromium, and the cost
of one live tick after a new step is flushed (incremental refresh + redraw).

    python benchmarks/dashboard.py [--steps 10000] [--groups 64] [--json out.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


def generate(root: str, steps: int, groups: int, G: int = 8, every: int = 10):
    import numpy as np

    import diag

    rng = np.random.default_rng(0)
    rec = diag.Recorder(root, "long", ["correct", "format"], group_size=G, flush_secs=5, sample_groups=1)
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


def measure(steps: int, groups: int) -> dict:
    import numpy as np

    from dashboards import query
    from dashboards.pages import run as run_page
    from dashboards.serve_thread import serving

    root = tempfile.mkdtemp(prefix="grpo-diag-dash-")
    t = time.perf_counter()
    rec = generate(root, steps, groups)
    rec.flush()
    t_write = time.perf_counter() - t
    store = query.Store(root)
    t = time.perf_counter()
    store.get("long")
    t_open = time.perf_counter() - t
    t = time.perf_counter()
    out = run_page.render(store, "long", -1)
    t_render = time.perf_counter() - t
    ticks = []
    for i in range(5):
        n = groups * 8
        rec.log_batch(steps + 1 + i, np.zeros((n, 2)))
        rec.flush()
        t = time.perf_counter()
        out = run_page.render(store, "long", out["version"])
        ticks.append(time.perf_counter() - t)
    idle = []
    for _ in range(5):
        t = time.perf_counter()
        assert run_page.render(store, "long", out["version"]) is None
        idle.append(time.perf_counter() - t)
    rec.close()
    browser_s = None
    try:
        from dashboards.screenshots import driver

        d = driver(1300, 1800)
        try:
            with serving(root) as base:
                d.get(base + "/")  # warm the static bundles, as a returning user has them cached
                time.sleep(1)
                t = time.perf_counter()
                d.get(base + "/run/long")
                while d.execute_script("return document.querySelectorAll('.js-plotly-plot .main-svg').length") < 6:
                    if time.perf_counter() - t > 120:
                        raise TimeoutError("graphs did not render")
                    time.sleep(0.02)
                browser_s = time.perf_counter() - t
        finally:
            d.quit()
    except Exception as e:  # noqa: BLE001 - the numbers above still stand without a browser
        print(f"browser timing skipped: {e}", file=sys.stderr)
    return {"steps": steps, "groups_per_step": groups, "group_rows": steps * groups, "write_run_s": t_write,
            "open_run_s": t_open, "run_page_compute_s": t_render, "run_page_in_browser_s": browser_s,
            "live_tick_new_step_s": statistics.median(ticks), "live_tick_idle_s": statistics.median(idle)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--groups", type=int, default=64)
    p.add_argument("--json")
    a = p.parse_args(argv)
    from benchmarks.common import report

    r = measure(a.steps, a.groups)
    return report(r, a.json)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
