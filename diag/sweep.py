"""`grpo-diag check` over many runs: a sweep's folder judged in one command, on every core.

Users who sweep a recipe (tens to hundreds of runs) want the few runs that went wrong first, not five
hundred verdicts to scroll. Each run is judged exactly as `check RUN` judges it (diag.detect.check_run,
the reward-gaming patterns of a firing episode included), in a pool of worker processes; the answer is
one record per run, ordered by what is still firing at the end (critical, then warning, then clean),
and a count per verdict. A run that cannot be read is one record saying why, never the end of the sweep.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

from diag.store import RUN_FILE, StoreError, list_runs, open_run

RANK = {"critical": 0, "warning": 1, "info": 2, None: 3}  # the order a sweep is listed in: worst first


@dataclass(frozen=True)
class Options:
    """What `check` judges a run with (its command-line options)."""
    margin: float = 0.05
    eval_size: int | dict | None = None
    reward_range: tuple[float, float] | None = None
    fail_on: str = "critical"
    eval_set: str | None = None
    gpus: int | None = None


def expand(paths: list[str]) -> list[Path]:
    """The runs `paths` name: a run directory is itself, a folder holding run directories is each of them
    (a sweep's root), in order, each once."""
    out: list[Path] = []
    for text in paths:
        p = Path(text)
        if (p / RUN_FILE).is_file():
            found = [p]
        elif p.is_dir() and (found := list_runs(p)):
            pass
        elif p.is_dir():
            raise StoreError(f"{p}: neither a run (no {RUN_FILE}) nor a folder of runs (none of its folders holds "
                             f"a {RUN_FILE}); pass a run directory or the folder a sweep's runs are in")
        else:
            raise StoreError(f"{p}: no such directory; pass a run directory or a folder of runs")
        out += [f for f in found if f not in out]
    return out


def judge_one(path: str | Path, options: Options) -> dict:
    """One run's record: its findings, verdict and (with a firing reward-truth or decoupling episode) how
    the reward is gamed; or the error that kept it from being judged."""
    from diag.detect import DecouplingParams, DetectParams, check_run  # lazy: the workers import it once
    from diag.detect.verdict import reward_truth_firing  # lazy: likewise

    try:
        run = open_run(path)
        params = DetectParams(decoupling=DecouplingParams(margin_h=options.margin))
        findings, verdict = check_run(run, params, eval_size=options.eval_size, reward_range_given=options.reward_range,
                                      fail_on=options.fail_on, eval_set=options.eval_set, gpus=options.gpus)
    except (StoreError, ValueError, KeyError, OSError) as e:
        return {"run": Path(path).name, "path": str(path), "error": str(e)}
    dicts = [f.to_dict() for f in findings]
    if options == Options():  # the dashboard's judgement exactly: kept beside the run, its pages open at once
        from diag import card  # lazy: the workers import it once
        from diag.detect import cache  # lazy: likewise

        cache.save(run, None, dicts)
        card.save(run.path, card.row(run, dicts))
    how = None
    if reward_truth_firing(findings):
        from diag.explain import explain_firing  # lazy: its statistics are imported only with a firing episode

        how = explain_firing(run, findings)
    return {"run": run.name, "path": str(path), "status": run.status, "findings": dicts,
            "verdict": verdict, "explain": how}


def _judge(args: tuple[str, dict]) -> dict:
    return judge_one(args[0], Options(**args[1]))


def judge_many(paths: list[Path], options: Options, jobs: int | None = None) -> list[dict]:
    """Every run's record, in the order given. Several runs are judged in `jobs` worker processes (default:
    one per core), each started fresh (spawned: a forked copy of a process holding polars' threads can hang)."""
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(paths)))
    if jobs == 1:
        return [judge_one(p, options) for p in paths]
    work = [(str(p), asdict(options)) for p in paths]
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        return list(pool.map(_judge, work, chunksize=max(1, len(work) // (jobs * 8))))


def worst(record: dict) -> str | None:
    """The worst severity still firing at the run's end ('error' for a run that could not be judged)."""
    return "error" if "error" in record else record["verdict"]["worst_firing"]


def ends(record: dict) -> str:
    """The run's verdict in words: 'clean', 'decoupled', 'signal gap, stalled', or 'unreadable'."""
    return "unreadable" if "error" in record else ", ".join(record["verdict"]["ends"])


def ordered(records: list[dict]) -> list[dict]:
    """Worst first: unreadable runs, then critical, warning, the rest; by name within each."""
    return sorted(records, key=lambda r: (-1 if "error" in r else RANK.get(worst(r), 3), r["run"]))


def counts(records: list[dict]) -> Counter:
    """How many runs end each way."""
    return Counter(ends(r) for r in records)


def count_line(records: list[dict]) -> str:
    c = counts(records)
    return f"{len(records)} runs: " + ", ".join(f"{n} {v}" for v, n in sorted(c.items(), key=lambda x: (-x[1], x[0])))
