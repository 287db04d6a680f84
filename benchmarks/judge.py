"""Judgement at scale: `grpo-diag check` time against a run's evaluations and a sweep's runs.

Runs are written through diag.Recorder (8 groups of 8 completions a step, an evaluation of 200 items
every 10 steps). Two series, each command timed in a fresh process from cold (interpreter start and
imports included, nothing cached beside the runs):

- evaluations: one run of 100 to 10,000 evaluations (1k to 100k steps), flat held-out accuracy at 0.5
  under a flat reward (the scan's worst case: no episode ends its work early), `grpo-diag check RUN`;
- runs: a folder of 1 to 500 runs of 300 steps (30 evaluations; a fifth of them fall while the reward
  rises), `grpo-diag check FOLDER` (one line per run, judged on every core); then the dashboard's runs
  page on the largest folder in headless Chromium (a fresh server; the cards `check` kept) and its verdict
  filter.

With `--before COMMIT` the same commands run from that commit's code (a git worktree; its `check`
takes the run directories one by one) beside this one's: the growth is read from both series, and the
docs draw them log-log (docs/benchmarks.md).

    python benchmarks/judge.py [--evals 100,300,1000,3000,10000] [--runs 1,10,100,500] [--before COMMIT]
                               [--repeat 3] [--record]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import report  # noqa: E402

GROUPS, G, EVERY, ITEMS, SWEEP_STEPS = 8, 8, 10, 200, 300


def write_run(root: str, name: str, steps: int, seed: int, falls: bool = False) -> str:
    """A run written through diag.Recorder: flat accuracy (or, with `falls`, a rise and a fall past the
    middle while the reward keeps rising), per-item results at every evaluation."""
    import numpy as np

    import diag

    rng = np.random.default_rng(seed)
    rec = diag.Recorder(root, name, ["correct", "format"], group_size=G, flush_secs=5, sample_groups=1)
    n = GROUPS * G
    for s in range(1, steps + 1):
        t = s / steps
        p = 0.3 + 0.4 * t if falls else 0.5
        correct = (rng.random(n) < p).astype(float)
        rec.log_batch(s, np.stack([correct, np.full(n, 0.1)], 1), advantages=rng.normal(size=n),
                      lengths=np.full(n, 4), clipped=np.zeros(n, bool), passed=correct > 0)
        if s % EVERY == 0:
            acc = (0.3 + 0.6 * min(t, 0.5) - (0.5 * (t - 0.5) if t > 0.5 else 0.0)) if falls else 0.5
            rec.log_eval(s, "heldout", rng.random(ITEMS) < acc)
    rec.close()
    return str(Path(root) / name)


def _write(args) -> str:
    return write_run(*args)


def check_seconds(code: Path, paths: list[str], repeat: int) -> float:
    """Median wall time of `grpo-diag check PATHS --json` run from `code` in a fresh interpreter."""
    runner = ("import sys; sys.path.insert(0, sys.argv[1]); from diag.cli import main; "
              "sys.exit(main(['check', *sys.argv[2:], '--json']))")
    env = {**os.environ, "PYTHONPATH": str(code)}
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", runner, str(code), *paths], env=env, cwd=code,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        times.append(time.perf_counter() - t)
        if done.returncode not in (0, 1):
            raise RuntimeError(f"check from {code} failed ({done.returncode}): {done.stderr[-2000:]}")
    return statistics.median(times)


def _worktree(commit: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix="grpo-diag-before-")) / "code"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), commit], check=True,
                   capture_output=True)
    return path


def measure(evals: list[int], runs: list[int], before: str | None, repeat: int, pages: bool = True) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="grpo-diag-judge-"))
    old = _worktree(before) if before else None
    out: dict = {"groups_per_step": GROUPS, "group_size": G, "eval_every": EVERY, "eval_items": ITEMS,
                 "sweep_run_steps": SWEEP_STEPS, "before_commit": before, "evals": [], "runs": []}
    try:
        for e in evals:
            path = write_run(str(tmp / f"e{e}"), "run", e * EVERY, seed=e)
            row = {"evaluations": e, "after_s": check_seconds(ROOT, [path], repeat)}
            if old:
                row["before_s"] = check_seconds(old, [path], 1 if e >= 3000 else repeat)
            out["evals"].append(row)
            print(row, flush=True)
        biggest = max(runs)
        folder = tmp / "sweep"
        # spawned writers: a forked copy of this process, which holds polars' threads, can hang
        with ProcessPoolExecutor(max_workers=os.cpu_count(), mp_context=get_context("spawn")) as pool:
            paths = list(pool.map(_write, [(str(folder), f"run-{i:03d}", SWEEP_STEPS, i, i % 5 == 0)
                                           for i in range(biggest)]))
        for n in runs:
            sub = tmp / f"sweep-{n}"
            sub.mkdir()
            for p in paths[:n]:
                os.symlink(p, sub / Path(p).name)
            row = {"runs": n, "after_s": check_seconds(ROOT, [str(sub)], 1 if n >= 100 else repeat)}
            if old:
                row["before_s"] = check_seconds(old, [str(sub / Path(p).name) for p in paths[:n]], 1)
            out["runs"].append(row)
            print(row, flush=True)
        if pages:
            out.update(runs_page_times(str(folder), repeat))  # every run of the sweep, where they lie (no links)
            print({k: v for k, v in out.items() if k.startswith("runs_page")}, flush=True)
    finally:
        if old:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    last_e = out["evals"][-1] if out["evals"] else {}
    last_r = out["runs"][-1] if out["runs"] else {}
    out.update({"check_largest_evals": last_e.get("evaluations"), "check_largest_s": last_e.get("after_s"),
                "check_largest_before_s": last_e.get("before_s"),
                "sweep_largest_runs": last_r.get("runs"), "sweep_largest_s": last_r.get("after_s"),
                "sweep_largest_before_s": last_r.get("before_s")})
    at = {r["evaluations"]: r for r in out["evals"]}
    if 1000 in at:
        out["check_1000_evals_s"], out["check_1000_evals_before_s"] = at[1000]["after_s"], at[1000].get("before_s")
    return out


# the runs table holds its rows and every run's verdict is in (none still being judged)
RUNS_DRAWN = """const t = document.getElementById('runs-table');
return !!t && t.querySelectorAll('tbody tr').length > arguments[0] && !t.innerText.includes('judging')"""


def runs_page_times(folder: str, loads: int) -> dict:
    """The runs page of the sweep folder (its runs checked: their cards beside them) in headless Chromium on a
    fresh `grpo-diag dashboard` process: the cold first load and `loads` more, until the table's rows are
    drawn; and the verdict filter's server side (the rows of the decoupled runs, the page's callback)."""
    from benchmarks.dashboard import _loads, dashboard_process
    from dashboards import query
    from dashboards.pages import runs as runs_page
    from dashboards.screenshots import driver

    d = driver(1300, 1800)
    try:
        with dashboard_process(folder) as base:
            got = _loads(d, base + "/", RUNS_DRAWN, 10, loads)
    finally:
        d.quit()
    store = query.Store(folder)
    runs_page.rows(store)
    t = time.perf_counter()
    shown = runs_page.rows(store, ["decoupled"])
    return {"runs_page_cold_s": got["cold_s"], "runs_page_median_s": got.get("median_s"),
            "runs_page_filter_s": time.perf_counter() - t, "runs_page_decoupled": len(shown)}


def figure(result: dict):
    """Time against size, log-log: a run's evaluations and a sweep's runs, before and after."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("one run: check time vs evaluations",
                                                       "a sweep: check time vs runs"))
    for col, (series, x) in enumerate((("evals", "evaluations"), ("runs", "runs")), start=1):
        rows = result.get(series, [])
        for key, name, dash in (("before_s", f"before ({(result.get('before_commit') or '')[:7]})", "dot"),
                                ("after_s", "now", "solid")):
            pts = [(r[x], r[key]) for r in rows if r.get(key) is not None]
            if pts:
                fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], name=name, mode="lines+markers",
                                         line={"dash": dash, "color": "#888" if dash == "dot" else "#1f77b4"},
                                         showlegend=col == 1), row=1, col=col)
        fig.update_xaxes(type="log", title_text=x, row=1, col=col)
        fig.update_yaxes(type="log", title_text="seconds (wall, from cold)", row=1, col=col)
    fig.update_layout(height=380, margin={"t": 40, "b": 40, "l": 60, "r": 20}, legend={"orientation": "h", "y": -0.25})
    return fig


def table(result: dict) -> str:
    """The docs' table and log-log plot (docs/benchmarks.md), from the recorded series."""
    lines = ["| size | now (s) | before (s) | before / now |", "|---|---|---|---|"]
    for series, x, unit in (("evals", "evaluations", "evaluations, one run"), ("runs", "runs", "runs, one folder")):
        for r in result.get(series, []):
            b = r.get("before_s")
            ratio = "-" if b is None else f"{b / r['after_s']:.1f}x"
            lines.append(f"| {r[x]:,} {unit} | {r['after_s']:.2f} | {'-' if b is None else f'{b:.2f}'} | {ratio} |")
    html = figure(result).to_html(full_html=False, include_plotlyjs="directory", config={"displaylogo": False})
    return "\n".join(lines) + "\n\n" + html


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--evals", default="100,300,1000,3000,10000", help="evaluations per run, comma-separated")
    p.add_argument("--runs", default="1,10,100,500", help="runs per sweep folder, comma-separated")
    p.add_argument("--before", metavar="COMMIT", help="also time this commit's check (a git worktree)")
    p.add_argument("--repeat", type=int, default=3, help="fresh processes per figure (the median; 1 at the largest)")
    p.add_argument("--no-pages", action="store_true", help="skip the runs page in Chromium on the largest sweep")
    p.add_argument("--json", help="also write the figures here")
    p.add_argument("--record", action="store_true", help="keep the figures in benchmarks/results.json")
    a = p.parse_args(argv)
    result = measure([int(x) for x in a.evals.split(",") if x], [int(x) for x in a.runs.split(",") if x],
                     a.before, a.repeat, not a.no_pages)
    return report({k: v for k, v in result.items()}, a.json, "judge" if a.record else None)


if __name__ == "__main__":
    main()
