"""The query layer: run directories -> polars frames for the pages, read incrementally.

Runs are cached per process; each `get` refreshes the run (reading only segments that appeared since
the last call), so a live page costs in proportion to what was added. Run names from URLs are checked
and resolved strictly inside the runs root.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from diag.detect import cache, detect_all
from diag.store import Run, StoreError, check_run_name, list_runs, open_run
from diag.summary import summarize


# a run with at most this many evaluation rows is judged in the call (the demo's runs: 0.2 s); a longer one is
# judged in the background, its page drawn at once (a 100k-step run's 10,000 evaluations take half a minute)
QUICK_EVAL_ROWS = 300
JUDGE_DELAY_S = 2.0  # ... starting this long after the page asked (its first drawing: about a second at 100k steps)
JUDGING_SHORT = "judging..."  # a long run's first judgement, running in the background


class NotFound(LookupError):
    pass


def resolve_run(root: Path, name: str) -> Path:
    """The run directory for a URL name, never outside `root` (no '..', separators or links out)."""
    try:
        check_run_name(name)
    except ValueError as e:
        raise NotFound(str(e)) from e
    root = root.resolve()
    path = (root / name).resolve()
    if path.parent != root or not (path / "run.json").is_file():
        raise NotFound(f"no run named {name!r} under the runs root")
    return path


@dataclass
class Cached:
    run: Run
    version: int = 0  # bumped whenever a refresh adds rows
    findings: list | None = None
    findings_key: tuple | None = None
    # one computation of the findings at a time: page ticks that arrive while a long run's detectors
    # run wait for that result instead of each starting (and slowing) another copy of the same work
    findings_lock: threading.Lock = field(default_factory=threading.Lock)
    # the detectors' state between recomputations of a growing run (diag.detect.detect_all's `state`)
    detect_state: dict = field(default_factory=dict)
    judging: tuple | None = None  # the findings key a background thread is judging (Store.findings, wait=False)
    render_lock: threading.Lock = field(default_factory=threading.Lock)  # one drawing of the run page at a time
    last_render: tuple | None = None  # (what it was drawn from, the drawing): a repeated request gets it again
    gamed: tuple | None = None  # (version, diag.explain's answer) while a reward-truth alert fires


class Store:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._runs: dict[str, Cached] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return [p.name for p in list_runs(self.root)]

    def get(self, name: str, refresh: bool = True) -> Cached:
        path = resolve_run(self.root, name)
        with self._lock:
            c = self._runs.get(name)
            if c is None:
                c = self._runs[name] = Cached(open_run(path))
            elif refresh:
                status = c.run.meta.get("status")
                added = c.run.refresh()
                # a run marked finished (or stale) adds no rows, yet its page must say so
                if any(added.values()) or c.run.meta.get("status") != status:
                    c.version += 1
            return c

    def findings(self, name: str, eval_set: str | None = None, wait: bool = True) -> list[dict] | None:
        """Offline detector findings, recomputed only when evaluations or alerts arrived, or every 50 new
        steps: the detectors judge at evaluations, so a live tick between them reuses the last result;
        kept beside the run (diag.detect.cache) so the next process to open it does not replay them.
        `eval_set`: the held-out set the decoupling verdict judges (check --eval-set); default the first.

        `wait=False` (the pages): a run (or held-out set) judged for the first time, with nothing stored
        beside it and more than QUICK_EVAL_ROWS evaluation rows, is judged in a background thread and None
        is returned meanwhile, so a long run's charts are drawn at once and its alerts when they are ready
        (`judging` says whether they are on the way).
        Later changes of a judged run are judged in the call: incremental, a fraction of a second."""
        c = self.get(name, refresh=False)
        key = self._findings_key(c.run, eval_set)
        if c.findings is not None and c.findings_key == key:
            return c.findings
        if not wait and (c.findings_key is None or c.findings_key[-1] != eval_set):
            if c.judging == key:
                return None
            stored = cache.load(c.run, eval_set)
            if stored is None and c.run.evals.height > QUICK_EVAL_ROWS:
                c.judging = key
                # started once the page that asked has been drawn: on a small machine the detectors would
                # otherwise take turns with the drawing they are meant not to hold up
                t = threading.Timer(JUDGE_DELAY_S, self._judge, args=(c, key, eval_set))
                t.daemon, t.name = True, f"judge-{name}"
                t.start()
                return None
            if stored is not None:
                with c.findings_lock:
                    c.findings, c.findings_key = stored, key
                return stored
        return self._judge(c, key, eval_set)

    def judging(self, name: str) -> bool:
        """Whether a run's first judgement is still running in the background."""
        c = self._runs.get(name)
        return c is not None and c.judging is not None

    @staticmethod
    def _findings_key(run, eval_set: str | None) -> tuple:
        return (run.evals.height, run.alerts.height, run.steps.height // 50, eval_set)

    def _judge(self, c: Cached, key: tuple, eval_set: str | None) -> list[dict]:
        run = c.run
        try:
            with c.findings_lock:
                if c.findings is None or c.findings_key != key:
                    # a fresh process opening a long run reads what an earlier one computed (diag.detect.cache)
                    c.findings = cache.load(run, eval_set)
                    if c.findings is None:
                        c.findings = ([f.to_dict() for f in detect_all(run, eval_set=eval_set, state=c.detect_state)]
                                      if run.steps.height or run.evals.height else [])
                        cache.save(run, eval_set, c.findings)
                    c.findings_key = key
                return c.findings
        finally:
            if c.judging == key:
                c.judging = None

    def runs_table(self) -> list[dict]:
        rows = []
        for name in self.names():
            try:
                c = self.get(name)
            except (StoreError, NotFound, pl.exceptions.PolarsError) as e:
                rows.append({"run": name, "status": f"unreadable: {e}"[:120]})
                continue
            s = summarize(c.run)
            found = self.findings(name, wait=False)
            findings = [f for f in found or [] if f["severity"] != "info"]
            stored = c.run.alerts
            kinds = sorted({f["kind"] for f in findings} | set(stored["kind"].to_list() if stored.height else []))
            rows.append({
                "run": name, "status": s["status"], "kind": s.get("kind") or c.run.meta.get("format") or "",
                "model": model_label(s.get("model")), "task": s.get("task") or "", "steps": s["steps"],
                "reward": _r(s["reward_last"]), "accuracy": _r(s["accuracy_last"]),
                "all_fail": _r(s["frac_all_fail_mean"]),
                "alerts": ", ".join(kinds) if found is not None else JUDGING_SHORT,
            })
        return rows


def _r(x):
    return None if x is None else round(float(x), 3)


def model_label(model) -> str:
    """What every page calls a model: a Hub id as is; a local path by its folder name (a checkpoint
    folder with its parent's name); anything longer than 48 characters cut from the left."""
    from pathlib import PurePath

    text = str(model or "")
    if text.startswith(("/", "./", "~")) or text.count("/") > 1:
        p = PurePath(text)
        text = f"{p.parent.name}/{p.name}" if p.name in ("checkpoint", "best-checkpoint") or p.name.startswith("step-") \
            else p.name
    return text if len(text) <= 48 else "..." + text[-45:]


REWARDED_UNTRUE = "rewarded_untrue"  # the completions filter: paid by the reward, rejected by the truth check


def completions(run: Run, signal: str | None = None, limit: int = 500) -> pl.DataFrame:
    """Sampled completions, newest first: all, one signal class, or those the reward paid (> 0) that the
    truth function rejected (what a deceptive reward buys)."""
    c = run.completions
    if c.height == 0:
        return c
    if signal == REWARDED_UNTRUE:
        c = c.filter((pl.col("truth") == False) & (pl.col("reward") > 0))  # noqa: E712 - a column comparison
    elif signal and signal != "all":
        c = c.filter(pl.col("signal") == signal)
    return c.sort(["step", "group", "index"], descending=[True, False, False]).head(limit)
