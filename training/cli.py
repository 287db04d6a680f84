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
    from training.grpo import is_main_process, world_size

    if world_size() > 1:
        _leave_process_group()
    if is_main_process():  # under `accelerate launch` every rank returns here; one line is enough
        print(f"[grpo-diag] run {cfg.name} written to {path} in {time.perf_counter() - t0:.1f} s")
    return 0


def _leave_process_group() -> None:
    """Every rank waits for the others, then the process group is torn down before exit: a rank that
    exits while another still finishes its run (rank 0 closing the store) can abort in gloo's threads
    ("terminate called without an active exception"). The finished trainer (its DDP model holds the
    group's communication state) sits in reference cycles that only the collector frees: freed here, while
    the group is alive, not by the interpreter's teardown after the group is gone (the same abort, seen
    once in CI after the barrier was added)."""
    import gc

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


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

    rows = run_demo(args.out, only=args.only, seed=args.seed)
    return 0 if all(r["met"] for r in rows) else 1


def register_demo(sub) -> None:
    p = sub.add_parser("demo", help="run the three shipped scenarios on the embedded tiny model (~3 min on 2 cores)")
    p.add_argument("--out", default="runs", help="runs directory (default: runs)")
    p.add_argument("--only", nargs="*", help="run only these scenarios (by name)")
    p.add_argument("--seed", type=int, help="override the scenarios' seed (each must still meet its contract)")
    p.set_defaults(func=_demo)


def _probe(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from training.probe import run_probe

    quiet_libraries()
    res = run_probe(args.model, args.task, prompts=args.prompts, k=args.k, G=args.G, temperature=args.temperature,
                    max_new_tokens=args.max_new_tokens, seed=args.seed)
    d = res.to_dict()
    if args.save:
        from diag.store import RUN_FILE, atomic_write_json

        run_json = Path(args.save) / RUN_FILE
        meta = json.loads(run_json.read_text())
        meta["probe"] = {k: v for k, v in d.items() if k != "pass_rates"}
        atomic_write_json(run_json, meta)
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    print(f"probe of {res.model} on {res.task}: {res.n_prompts} prompts x {res.k} samples ({res.seconds:.1f} s)")
    print(f"  mean pass rate {res.mean_pass_rate:.3f}; never solved {res.share_never_solved:.2f}; "
          f"always solved {res.share_always_solved:.2f}")
    print("  G   predicted zero-signal share   all-fail share   method")
    for g, v in res.dead_share.items():
        print(f"  {g:<3d} {v:>27.3f}   {res.all_fail_share[g]:>14.3f}   {res.method[g]}")
    print(f"recommendation: {res.recommendation}")
    for r in res.reasons:
        print(f"  - {r}")
    return 0


def register_probe(sub) -> None:
    p = sub.add_parser("probe", help="pre-flight signal probe: predicted zero-signal share for G = 2..32")
    p.add_argument("--model", required=True, help="Hub id, local path, 'smollm2-135m' (offline, the smollm extra), 'tiny', "
                   "'base:weak' / 'base:strong' (shipped SFT bases), or 'base:N' (embedded SFT base built at N steps)")
    p.add_argument("--task", required=True, help="task name (add1, add2, add3, mul, expr, ladder for the embedded "
                   "models; gsm, gsm-easy: chat word problems for instruct models)")
    p.add_argument("--max-new-tokens", type=int, default=16, help="completion budget, as in the run (e.g. 128 for gsm)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prompts", type=int, default=200)
    p.add_argument("--k", type=int, default=16, help="samples per prompt")
    p.add_argument("--G", type=int, default=8, help="the group size you plan to train with")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--save", help="a run directory whose run.json receives the probe (shown on the dashboard)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_probe)
