"""The query layer: run directories -> polars frames for the pages, read incrementally.

Runs are cached per process; each `get` refreshes the run (reading only segments that appeared since
the last call), so a live page costs in proportion to what was added. Run names from URLs are checked
and resolved strictly inside the runs root.
"""

from __future__ import annotations

import queue as queue_mod
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from diag import card
from diag.detect import cache, detect_all
from diag.detect.run import GROUP_COLUMNS
from diag.figures import HEATMAP_COLUMNS
from diag.store import Run, StoreError, check_run_name, list_runs, open_run


# a run with at most this many evaluation rows is judged in the call: its page is drawn with its alerts (a
# 100k-step run's 10,000 evaluations take about a second, diag.detect.screen); a longer one is judged in the
# background, its page drawn at once and its alerts when they are in
QUICK_EVAL_ROWS = 50_000
JUDGE_DELAY_S = 2.0  # ... starting this long after the page asked (its first drawing must not wait on it)
JUDGE_IN_LIST_S = 1.0  # the runs page judges runs in the call for this long, then queues the rest
PAGE_GROUP_COLUMNS = list(dict.fromkeys(HEATMAP_COLUMNS + GROUP_COLUMNS))  # read once when a run page judges
JUDGING_SHORT = card.JUDGING  # a run's first judgement, running in the background


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
    refresh_lock: threading.Lock = field(default_factory=threading.Lock)  # one reading of new segments at a time
    last_render: tuple | None = None  # (what it was drawn from, the drawing): a repeated request gets it again
    gamed: tuple | None = None  # (version, diag.explain's answer) while a reward-truth alert fires
    card: tuple | None = None  # ((version, findings' identity), the runs page's line) as last made


class Store:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._runs: dict[str, Cached] = {}
        self._lock = threading.Lock()
        self._pending: queue_mod.Queue | None = None  # runs waiting for the background worker (findings(queue=True))

    def names(self) -> list[str]:
        return [p.name for p in list_runs(self.root)]

    def get(self, name: str, refresh: bool = True) -> Cached:
        path = resolve_run(self.root, name)
        with self._lock:
            c = self._runs.get(name)
        if c is None:  # opened outside the store's lock: the runs page opens hundreds of runs on several threads
            opened = Cached(open_run(path))
            with self._lock:
                return self._runs.setdefault(name, opened)
        if refresh:
            with c.refresh_lock:
                status = c.run.meta.get("status")
                added = c.run.refresh()
                # a run marked finished (or stale) adds no rows, yet its page must say so
                if any(added.values()) or c.run.meta.get("status") != status:
                    c.version += 1
        return c

    def findings(self, name: str, eval_set: str | None = None, wait: bool = True,
                 queue: bool = False, page: bool = False) -> list[dict] | None:
        """Offline detector findings, recomputed only when evaluations or alerts arrived, or every 50 new
        steps: the detectors judge at evaluations, so a live tick between them reuses the last result;
        kept beside the run (diag.detect.cache) so the next process to open it does not replay them.
        `eval_set`: the held-out set the decoupling verdict judges (check --eval-set); default the first.

        `wait=False` (the pages): a run (or held-out set) judged for the first time, with nothing stored
        beside it and more than QUICK_EVAL_ROWS evaluation rows, is judged in a background thread and None
        is returned meanwhile, so a long run's charts are drawn at once and its alerts when they are ready
        (`judging` says whether they are on the way). `queue=True` (the runs and compare pages, which list
        hundreds of runs): a run with nothing judged or stored is queued for one background worker, in turn,
        and None returned meanwhile. `page=True` (the run page): a judgement also reads the groups columns the
        page's heatmap draws, in the same pass as the detectors' own.
        Later changes of a judged run are judged in the call: incremental, a fraction of a second."""
        c = self.get(name, refresh=False)
        key = self._findings_key(c.run, eval_set)
        if c.findings is not None and c.findings_key == key:
            return c.findings
        if queue and c.findings_key is None:
            stored = self._kept(c, key, eval_set)
            if stored is not None:
                return stored
            if c.judging is None:
                c.judging = key
                self._queue().put((c, key, eval_set))
            return None
        if not wait and (c.findings_key is None or c.findings_key[-1] != eval_set):
            if c.judging == key:  # a judgement under way: a page waits for it unless the run is a long one
                return self._judge(c, key, eval_set, page) if c.run.evals.height <= QUICK_EVAL_ROWS else None
            stored = self._kept(c, key, eval_set)
            if stored is not None:
                return stored
            if c.run.evals.height > QUICK_EVAL_ROWS:
                # started once the page that asked has been drawn: on a small machine the detectors would
                # otherwise take turns with the drawing they are meant not to hold up
                self._in_background(c, key, eval_set, JUDGE_DELAY_S, page)
                return None
        return self._judge(c, key, eval_set, page)

    def start_judging(self, name: str, eval_set: str | None = None) -> None:
        """Judge a run not judged yet in a thread now (the browser's request for its page and the route that
        opens it call it; the second finds it started): the page's drawing, which needs the findings, then
        waits for less, or for nothing."""
        c = self.get(name, refresh=False)
        if c.findings_key is None and c.run.evals.height <= QUICK_EVAL_ROWS:
            self._in_background(c, self._findings_key(c.run, eval_set), eval_set, page=True)

    def _kept(self, c: Cached, key: tuple, eval_set: str | None) -> list[dict] | None:
        """The findings stored beside the run for `key`, now the run's; None when none are."""
        stored = cache.load(c.run, eval_set)
        if stored is not None:
            with c.findings_lock:
                c.findings, c.findings_key = stored, key
        return stored

    def _in_background(self, c: Cached, key: tuple, eval_set: str | None, delay: float = 0.0,
                       page: bool = False) -> None:
        """Judge `c` for `key` on a thread of its own after `delay` seconds, unless a judgement is under way."""
        with self._lock:  # the page's request and its route may both ask: one judgement
            if c.judging is not None:
                return
            c.judging = key
        t = threading.Timer(delay, self._judge, args=(c, key, eval_set, page))
        t.daemon, t.name = True, f"judge-{c.run.name}"
        t.start()

    def _queue(self) -> "queue_mod.Queue":
        with self._lock:
            if self._pending is None:
                self._pending = queue_mod.Queue()
                threading.Thread(target=self._drain, daemon=True, name="judge-queue").start()
            return self._pending

    def _drain(self) -> None:
        while True:
            c, key, eval_set = self._pending.get()
            try:
                self._judge(c, key, eval_set)
            except Exception:  # noqa: BLE001 - one unreadable run must not stop the others being judged
                c.judging = None

    def judging(self, name: str) -> bool:
        """Whether a run's first judgement is still running in the background."""
        c = self._runs.get(name)
        return c is not None and c.judging is not None

    @staticmethod
    def _findings_key(run, eval_set: str | None) -> tuple:
        return (run.evals.height, run.alerts.height, run.steps.height // 50, eval_set)

    def _judge(self, c: Cached, key: tuple, eval_set: str | None, page: bool = False) -> list[dict]:
        run = c.run
        try:
            with c.findings_lock:
                if c.findings is None or c.findings_key != key:
                    # a fresh process opening a long run reads what an earlier one computed (diag.detect.cache)
                    c.findings = cache.load(run, eval_set)
                    if c.findings is None and page:
                        # one read of the groups columns the detectors and the page's heatmap need: the page,
                        # waiting on the same lock, takes its own from it
                        run.columns("groups", PAGE_GROUP_COLUMNS)
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
        """One row per run (diag.card): status, headline numbers, alerts and the verdict (how it ends: clean,
        decoupled, ...; 'judging...' while its first judgement is queued). A run this process has not opened
        is listed from the card kept beside it while that holds, so a sweep of 500 runs lists in a second
        or two; the others are opened on a few threads (polars reads outside the GIL)."""
        names = self.names()
        deadline = time.monotonic() + JUDGE_IN_LIST_S
        if len(names) < 8:
            return [self._runs_row(n, deadline) for n in names]
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="runs-table") as pool:
            return list(pool.map(self._runs_row, names, [deadline] * len(names)))

    def _runs_row(self, name: str, deadline: float = 0.0) -> dict:
        try:
            if name not in self._runs:
                kept = card.load(resolve_run(self.root, name))
                if kept is not None:  # named by its checked folder name, never by what a card file says
                    return {**kept, "run": name}
            c = self.get(name)
            # judged in the call while the listing's budget lasts (a handful of runs: every verdict at once);
            # past it, queued for the background worker
            found = self.findings(name, wait=False, queue=time.monotonic() > deadline)
            key = (c.version, id(found))
            if c.card is not None and c.card[0] == key:
                return c.card[1]
            row = {**card.row(c.run, found), "run": name}
        except (StoreError, NotFound, pl.exceptions.PolarsError, OSError) as e:
            return {"run": name, "status": f"unreadable: {e}"[:120], "verdict": UNREADABLE, "worst": ""}
        c.card = (key, row)
        card.save(c.run.path, row)
        return row

    def verdicts(self) -> dict[str, str]:
        """Each run's verdict as the runs page shows it (run name -> 'clean', 'decoupled', ...)."""
        return {r["run"]: r["verdict"] for r in self.runs_table()}


UNREADABLE = "unreadable"
model_label = card.model_label  # what every page calls a model (diag.card)


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
