"""`grpo-diag train` and `grpo-diag demo`, registered through the grpo_diag.commands entry points."""

from __future__ import annotations

import argparse
import time


def quiet_libraries() -> None:
    """Our progress bar and the run store carry the numbers; silence the libraries' own chatter."""
    import os

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _train(args: argparse.Namespace) -> int:
    quiet_libraries()
    from training.config import load
    from training.launch import launch

    cfg = load(args.config)
    if args.name:
        from dataclasses import replace

        cfg = replace(cfg, name=args.name)
    t0 = time.perf_counter()
    path = launch(cfg, args.out, overwrite=args.overwrite)
    print(f"[grpo-diag] run {cfg.name} written to {path} in {time.perf_counter() - t0:.1f} s")
    return 0


def register_train(sub) -> None:
    p = sub.add_parser("train", help="launch an instrumented SFT / GRPO / SFT-then-GRPO run from a TOML config")
    p.add_argument("config", help="path to a TOML run config (see training/configs/)")
    p.add_argument("--out", default="runs", help="runs directory (default: runs)")
    p.add_argument("--name", help="override the run name from the config")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run of the same name")
    p.set_defaults(func=_train)


def _demo(args: argparse.Namespace) -> int:
    from training.demo import run_demo

    quiet_libraries()

    run_demo(args.out, only=args.only)
    return 0


def register_demo(sub) -> None:
    p = sub.add_parser("demo", help="run the three shipped scenarios on the embedded tiny model (~3 min on 2 cores)")
    p.add_argument("--out", default="runs", help="runs directory (default: runs)")
    p.add_argument("--only", nargs="*", help="run only these scenarios (by name)")
    p.set_defaults(func=_demo)
