"""`grpo-diag` command line.

The core commands live here; commands that need the training stack (`train`, `demo`) or the
dashboard register through the `grpo_diag.commands` entry-point group, so `diag` never imports them
and a core-only install still starts.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points
from typing import Callable

from diag.store import StoreError, list_runs, open_run

EXIT_OK, EXIT_ALERT, EXIT_ERROR = 0, 1, 2


RUNS_COLUMNS = ("run", "status", "model", "task", "steps", "reward", "held-out acc", "all-fail")


def _cmd_runs(args: argparse.Namespace) -> int:
    """List the runs under a root with their headline numbers: a table on a terminal; tab-separated
    lines, whole names and all, when piped (nothing cut to a terminal's width); JSON with --json."""
    import json

    from diag.summary import summarize  # lazy: load only the command run

    rows = []
    for p in list_runs(args.root):
        try:
            s = summarize(open_run(p))
        except StoreError as e:
            print(f"skipping {p}: {e}", file=sys.stderr)
            continue
        rows.append(dict(zip(RUNS_COLUMNS, (s["name"], s["status"], s["model"], s["task"], s["steps"], s["reward_last"],
                                            s["accuracy_last"], s["frac_all_fail_mean"]))))
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
    elif not sys.stdout.isatty():
        print("\t".join(RUNS_COLUMNS))
        for r in rows:
            print("\t".join(_fmt(v) if isinstance(v, float) else str(v if v is not None else "-") for v in r.values()))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(*RUNS_COLUMNS)
        for r in rows:
            table.add_row(*[_fmt(v) if isinstance(v, float) else str(v) for v in r.values()])
        Console().print(table)
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    """Print one run's summary: start / peak / end of reward and held-out accuracy, signal shares."""
    import json

    from diag.summary import summarize  # lazy: load only the command run

    s = summarize(open_run(args.run))
    print(json.dumps(s, indent=2, default=str))
    return EXIT_OK


def _cmd_check(args: argparse.Namespace) -> int:
    """Run the detectors offline and say how each run ends. Exit 0: nothing at or above --fail-on still
    firing at the end of any run (resolved episodes are listed); 1: something is; 2: error. Several runs (or
    a folder of them) are judged on every core, listed one line each, worst first (diag.sweep)."""
    import json

    from diag import sweep  # lazy: load only the command run

    paths = sweep.expand(args.run)
    options = sweep.Options(margin=args.margin, eval_size=args.eval_size, reward_range=args.reward_range,
                            fail_on=args.fail_on, eval_set=args.eval_set, gpus=args.gpus)
    results = sweep.judge_many(paths, options, args.jobs)
    errors = [r for r in results if "error" in r]
    if len(results) == 1 and errors:
        raise ValueError(errors[0]["error"])
    failed = any(r["verdict"]["fails"] for r in results if "error" not in r)
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0], indent=2, default=str))
    else:
        from rich.console import Console

        con = Console(markup=False, highlight=False, soft_wrap=True)  # CI logs: one line a line
        if len(results) > 1 and not args.details:
            _print_sweep(con, results)
        else:
            for r in results:
                _print_run(con, r)
    for r in errors:
        print(f"grpo-diag check: error: {r['error']}", file=sys.stderr)
    return EXIT_ERROR if errors else EXIT_ALERT if failed else EXIT_OK


def _print_sweep(con, results: list[dict]) -> None:
    from diag import sweep  # lazy: load only the command run
    from diag.detect.verdict import headline  # lazy: load only the command run

    for r in sweep.ordered(results):
        if "error" in r:
            con.print(f"[unreadable] {r['path']}: {r['error']}")
        else:
            con.print(f"[{r['verdict']['worst_firing'] or 'clean'}] {headline(r['run'], r['verdict'])}")
    con.print(sweep.count_line(results) + " (grpo-diag check RUN for one run's findings, --details for every run's)")


def _print_run(con, r: dict) -> None:
    from diag.detect.verdict import headline  # lazy: load only the command run

    if "error" in r:
        con.print(f"{r['path']}: unreadable: {r['error']}")
        return
    fired = [f for f in r["findings"] if f["severity"] != "info"]
    firing = [f for f in fired if f["state"] == "firing"]
    con.print(headline(r["run"], r["verdict"]))
    con.print(f"  {len(firing)} alert(s) firing, {len(fired) - len(firing)} resolved "
              f"(exit 1 on {r['verdict']['fail_on']} or worse firing)")
    for f in r["findings"]:
        onset = f"onset step {f['onset']}" if f["onset"] is not None else "no onset"
        state = "" if f["severity"] == "info" else (
            f", RESOLVED at step {f['resolved_step']}" if f["state"] == "resolved" else ", FIRING")
        con.print(f"  [{f['severity']}] {f['kind']} at step {f['step']} ({onset}{state})")
        con.print(f"      {f['message']}")
        if r["explain"] and f["state"] == "firing" and f["kind"] in ("truth_gap", "decoupling"):
            con.print(f"      how: {r['explain']['headline'] or r['explain']['note'] or 'no pattern found'} "
                      f"(grpo-diag explain {r['path']})")


def _cmd_explain(args: argparse.Namespace) -> int:
    """How the reward is being gamed: the patterns of paid-untrue completions against true ones."""
    import json

    from diag.explain import explain_run, render_text  # lazy: load only the command run

    try:
        result = explain_run(open_run(args.run), since=args.since, reward=args.reward)
    except ValueError as e:
        print(f"grpo-diag explain: error: {args.run}: {e}", file=sys.stderr)
        return EXIT_ERROR
    print(json.dumps(result, indent=2, default=str) if args.json else render_text(result))
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    """Correlation report of one or more runs (HTML self-contained, Markdown, or JSON)."""
    from pathlib import Path

    from diag.report import render  # lazy: load only the command run

    runs = [open_run(p) for p in args.run]
    text = render(runs, args.format)
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"report written to {args.output}", file=sys.stderr)
    return EXIT_OK


def _cmd_import(args: argparse.Namespace) -> int:
    """Import a foreign log into the run store."""
    from diag.importers import import_log  # lazy: load only the command run

    path, notes = import_log(args.path, fmt=args.format, name=args.name, root=args.root,
                             accuracy_key=args.accuracy_key, overwrite=args.overwrite,
                             logging_steps=args.logging_steps, maps=args.map, profile=args.profile,
                             eval_size=args.eval_size, reward_range=args.reward_range,
                             save_profile=args.save_profile, validation_dir=args.validation_dir,
                             metrics=args.metrics, pass_threshold=args.pass_threshold, run=args.run)
    run = open_run(path)
    print(f"imported {args.path} as {run.name} ({run.meta.get('format')}): {run.steps.height} steps, "
          f"{run.evals.height} evaluations -> {path}")
    for n in notes:
        print(f"  note: {n}")
    return EXIT_OK


def _cmd_watch(args: argparse.Namespace) -> int:
    """Follow a log another engine writes; exit 0 when the run ends (finished or stale), 1 while an alert at
    or above --fail-on fires at the end, 2 on an error."""
    from diag.detect import check_run  # lazy: load only the command run
    from diag.monitor import MonitorConfig  # lazy: load only the command run
    from diag.watch import WatchOptions, follower_for  # lazy: load only the command run

    opts = WatchOptions(
        fmt=args.format, name=args.name, root=args.root, interval=args.interval,
        idle=None if args.idle <= 0 else args.idle, total_steps=args.total_steps,
        import_options={k: v for k, v in {"accuracy_key": args.accuracy_key, "logging_steps": args.logging_steps,
                                          "maps": args.map, "profile": args.profile, "eval_size": args.eval_size,
                                          "reward_range": args.reward_range, "validation_dir": args.validation_dir,
                                          "metrics": args.metrics, "pass_threshold": args.pass_threshold,
                                          "run": args.run}.items()
                        if v is not None},
        monitor=MonitorConfig(notify=tuple(args.notify or ())),
    )
    follower = follower_for(args.path, opts)
    status = follower.run()
    if follower.writer is None:
        print(f"grpo-diag watch: nothing readable appeared in {args.path}", file=sys.stderr)
        return EXIT_ERROR
    _, verdict = check_run(open_run(follower.writer.path), fail_on=args.fail_on)
    from diag.detect.verdict import headline  # lazy: load only the command run

    print(headline(follower.writer.path.name, verdict) + f" (run {status})")
    return 1 if verdict["fails"] else EXIT_OK


def _reward_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--reward-range {text!r}: expected LO,HI, e.g. 0,1 or -10,11") from e
    if not hi > lo:
        raise argparse.ArgumentTypeError(f"--reward-range {text!r}: HI must be above LO")
    return lo, hi


def _margin(text: str) -> float:
    try:
        h = float(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--margin {text!r}: a number, Cohen's h, e.g. 0.05") from e
    if not 0 < h < 1:
        raise argparse.ArgumentTypeError(f"--margin {text!r}: Cohen's h between 0 and 1 (0.05: 2.5 points at 50%)")
    return h


def _eval_size(text: str):
    from diag.sizes import parse_eval_size  # lazy: load only the command run

    try:
        return parse_eval_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def _judging_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--eval-size", type=_eval_size, metavar="N|SET=N,...",
                   help="items per held-out evaluation where the log does not say (makes the fall test exact): one "
                        "number for every set, or per set, e.g. eval_math500=4000,eval_aime24=240")
    p.add_argument("--reward-range", type=_reward_range, metavar="LO,HI",
                   help="the reward's range, to split zero-std shares into all-fail / all-pass (default: inferred)")


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def _plugins() -> dict[str, Callable]:
    return {ep.name: ep for ep in entry_points(group="grpo_diag.commands")}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grpo-diag", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("runs", help="list runs under a root directory")
    p.add_argument("--root", default="runs")
    p.add_argument("--json", action="store_true", help="one JSON list of the runs (names and numbers whole)")
    p.set_defaults(func=_cmd_runs)

    p = sub.add_parser("show", help="summary of one run as JSON")
    p.add_argument("run", help="path to a run directory")
    p.set_defaults(func=_cmd_show)

    p = sub.add_parser("check", help="run the detectors on runs and say how each ends; exit 0 clean, 1 a finding "
                                     "at or above --fail-on still firing, 2 error")
    p.add_argument("run", nargs="+", help="run directories, or folders of runs (a sweep's root: each run in it)")
    p.add_argument("--json", action="store_true", help="print findings and the verdict as JSON (one record per run)")
    p.add_argument("--jobs", type=int, metavar="N", help="worker processes for several runs (default: one per core)")
    p.add_argument("--details", action="store_true",
                   help="every finding of every run (default with several runs: one line per run, worst first)")
    p.add_argument("--fail-on", choices=["info", "warning", "critical"], default="critical",
                   help="exit 1 when a finding of this severity or worse is still firing at the end (default: critical)")
    p.add_argument("--margin", type=_margin, default=0.05, metavar="H",
                   help="practical margin of a decoupling fall, Cohen's h (default 0.05: 2.5 points at 50%% accuracy, "
                        "1.5 at 10%% or 90%%)")
    p.add_argument("--eval-set", metavar="NAME",
                   help="the held-out set the decoupling verdict judges (default: the first recorded; the others "
                        "corroborate it)")
    p.add_argument("--gpus", type=int, metavar="N",
                   help="GPUs the run used: each firing alert's cost since its onset adds GPU-hours (default: the "
                        "run's config, where it says)")
    _judging_options(p)
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("explain", help="how the reward is being gamed: what the completions it pays that the task's "
                                       "check rejects do, that the true ones do not")
    p.add_argument("run", help="a run directory")
    p.add_argument("--json", action="store_true", help="print the patterns as JSON")
    p.add_argument("--since", type=int, metavar="STEP",
                   help="contrast completions from this step on (default: the firing reward-truth gap's or "
                        "decoupling's onset; the whole run without one)")
    p.add_argument("--reward", metavar="FUNC", help="the reward function judged (default: the one paying untrue "
                                                    "completions above its usual pay most often)")
    p.set_defaults(func=_cmd_explain)

    p = sub.add_parser("report", help="correlation report (reward vs held-out accuracy) of one or more runs")
    p.add_argument("run", nargs="+", help="run directories (several: a side-by-side comparison)")
    p.add_argument("--format", choices=["html", "md", "json"], default="html")
    p.add_argument("--output", "-o", help="output file (default: standard output)")
    p.set_defaults(func=_cmd_report)

    from diag.importers import FORMATS  # lazy: load only the command run

    p = sub.add_parser("import", help="import a trainer_state.json, TRL / verl console log, TRL completions, verl "
                                      "dumps, or a W&B / TensorBoard / MLflow / Trackio run")
    p.add_argument("path", help="a file or folder, or wandb://ENTITY/PROJECT/RUN_ID, or an MLflow sqlite:///... URI")
    p.add_argument("--run", metavar="NAME", help="trackers: the run to take from a TensorBoard folder, MLflow store "
                                                 "or Trackio project holding several")
    p.add_argument("--format", choices=["auto", *FORMATS], default="auto")
    p.add_argument("--name", help="run name (default: from the file or folder name)")
    p.add_argument("--root", default="runs", help="runs directory (default: runs)")
    p.add_argument("--accuracy-key", help="logged metric holding held-out accuracy (default: recognised names)")
    p.add_argument("--logging-steps", type=int, help="TRL console logs: optimizer steps between logged rows")
    p.add_argument("--validation-dir", help="verl rollout dumps: trainer.validation_data_dir (per-item held-out accuracy)")
    p.add_argument("--metrics", help="verl rollout dumps: the file logger's JSONL (trainer.logger=[...,'file'])")
    p.add_argument("--pass-threshold", type=float,
                   help="verl rollout dumps without `acc`: the score that passes the verifier (default 0.5)")
    p.add_argument("--map", action="append", metavar="TARGET=KEY",
                   help="generic format: where a column comes from (step, reward, accuracy, eval_size, frac_zero_signal, "
                        "frac_all_fail, frac_all_pass, len_mean, func:NAME); a key or {key} arithmetic")
    p.add_argument("--profile", help="generic format: a saved mapping (name or .toml path)")
    p.add_argument("--save-profile", metavar="NAME", help="save the --map options as a reusable profile")
    _judging_options(p)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("watch", help="follow a log another engine is writing (trainer_state.json, verl file logger, "
                                     "tinker / generic JSONL, console output, a W&B offline run, a TensorBoard "
                                     "folder, a Trackio or MLflow database) and alert live")
    p.add_argument("path")
    p.add_argument("--format", choices=["auto", "verl-rollouts", "trainer-state", "trl-console", "verl-console",
                                        "verl-file", "tinker", "generic", "wandb", "tensorboard", "mlflow",
                                        "trackio"], default="auto")
    p.add_argument("--run", metavar="NAME", help="trackers: the run to follow in a store holding several")
    p.add_argument("--name", help="run name (default: from the file or folder name)")
    p.add_argument("--root", default="runs", help="runs directory (default: runs)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between polls (default 2)")
    p.add_argument("--idle", type=float, default=600.0,
                   help="seconds without new data before the run is called stale and the watch ends (0: never)")
    p.add_argument("--total-steps", type=int, metavar="N",
                   help="the run's last step (verl: trainer.total_training_steps): once it is in, the run is "
                        "marked finished and the watch ends")
    p.add_argument("--notify", action="append", metavar="URL", help="apprise URL to notify on alerts (repeatable)")
    p.add_argument("--fail-on", choices=["info", "warning", "critical"], default="critical")
    p.add_argument("--accuracy-key", help="logged metric holding held-out accuracy (default: recognised names)")
    p.add_argument("--logging-steps", type=int, help="TRL console logs: optimizer steps between logged rows")
    p.add_argument("--map", action="append", metavar="TARGET=KEY", help="generic format: as for import")
    p.add_argument("--profile", help="generic format: a saved mapping (name or .toml path)")
    p.add_argument("--validation-dir", help="verl rollout dumps: trainer.validation_data_dir")
    p.add_argument("--metrics", help="verl rollout dumps: the file logger's JSONL")
    p.add_argument("--pass-threshold", type=float, help="verl rollout dumps without `acc`: the score that passes")
    _judging_options(p)
    p.set_defaults(func=_cmd_watch)

    for name, ep in sorted(_plugins().items()):
        try:
            register = ep.load()
        except ImportError as e:  # e.g. the training extra is not installed
            msg = f"needs an optional extra: {e}"
            q = sub.add_parser(name, help=f"(unavailable: {msg})")
            q.set_defaults(func=lambda a, m=msg: (print(m, file=sys.stderr), EXIT_ERROR)[1])
            continue
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (StoreError, ValueError, KeyError, OSError) as e:
        print(f"grpo-diag {args.command}: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as e:  # noqa: BLE001 - a bug must still end in one line and exit 2, never a traceback
        print(f"grpo-diag {args.command}: internal error ({type(e).__name__}): {e}. Please report it with the "
              "command and the file.", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
