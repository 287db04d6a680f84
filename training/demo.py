"""The demo: three shipped scenarios on the embedded tiny model, each a recorded run.

strong-healthy   a well-trained SFT base, strict reward: held-out accuracy rises, few all-fail groups
weak-signal-gap  a barely-trained base: most groups all-fail, GRPO gets no signal, no held-out gain
deceptive-reward a lenient verifier (answer anywhere) as reward: reward holds or rises while strict
                 held-out accuracy falls below its peak
"""

from __future__ import annotations

import time
from pathlib import Path

from training.config import CONFIG_DIR, RunConfig, load

SCENARIOS = ("strong-healthy", "weak-signal-gap", "deceptive-reward")


def scenario_configs(only: list[str] | None = None) -> list[RunConfig]:
    names = only or list(SCENARIOS)
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        raise ValueError(f"unknown scenario(s) {sorted(unknown)}; choose from {SCENARIOS}")
    return [load(CONFIG_DIR / "scenarios" / f"{n}.toml") for n in names]


def base_accuracy(cfg: RunConfig) -> float:
    """Greedy held-out accuracy of the scenario's base model, on the scenario's own held-out set."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.models import resolve
    from training.tasks import get_task, greedy_eval, split

    task = get_task(cfg.task.name)
    _, held = split(task, cfg.task.n_train, cfg.task.n_eval, seed=cfg.task.seed)
    path = resolve(cfg.model, cfg.seed)
    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)
    _, correct = greedy_eval(model, tok, task, held, cfg.heldout.max_new_tokens)
    return sum(correct) / len(correct)


def prepare_bases(cfgs: list[RunConfig]) -> None:
    """Build every SFT base the scenarios need in one SFT run (checkpoints of one run, as in the papers)."""
    from training.models import base_path

    bases = [c.model for c in cfgs if c.model.path == "base"]
    if bases:
        steps = tuple(sorted({m.base_steps for m in bases}))
        base_path(bases[0], extra_steps=steps)


def run_demo(out: str, only: list[str] | None = None, seed: int | None = None) -> list[dict]:
    """Run the scenarios; each base is checked against its contract before GRPO, each run after it.
    A contract that does not hold is said plainly (row `contract`), never papered over."""
    from dataclasses import replace

    from rich.console import Console
    from rich.table import Table

    from diag import open_run
    from diag.summary import summarize
    from training.contracts import base_ok, check
    from training.launch import launch

    t0 = time.perf_counter()
    cfgs = scenario_configs(only)
    if seed is not None:
        cfgs = [replace(c, seed=seed) for c in cfgs]
    prepare_bases(cfgs)
    t_bases = time.perf_counter() - t0
    rows = []
    for cfg in cfgs:
        t = time.perf_counter()
        ok, why = base_ok(cfg.name, base_accuracy(cfg))
        if not ok:
            rows.append({"name": cfg.name, "contract": f"NOT run: {why}", "met": False, "wall_s": 0.0})
            continue
        path = launch(cfg, out, overwrite=True)
        run = open_run(Path(path))
        s = summarize(run)
        verdict = check(cfg.name, run)
        s.update(wall_s=time.perf_counter() - t, contract=verdict.line(), met=verdict.met)
        rows.append(s)
    total = time.perf_counter() - t0

    table = Table(title=f"grpo-diag demo: {total:.0f} s in all ({t_bases:.0f} s preparing bases)")
    for col in ("run", "reward start/peak/end", "held-out acc start/peak/end", "mean all-fail", "wall s", "contract"):
        table.add_column(col)
    f = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    for s in rows:
        table.add_row(s["name"], f"{f(s.get('reward_start'))} / {f(s.get('reward_peak'))} / {f(s.get('reward_end'))}",
                      f"{f(s.get('accuracy_start'))} / {f(s.get('accuracy_peak'))} / {f(s.get('accuracy_end'))}",
                      f(s.get("frac_all_fail_mean")), f"{s['wall_s']:.0f}", s["contract"])
    Console(markup=False, highlight=False).print(table)
    print(f"runs written under {Path(out).resolve()}; inspect with `grpo-diag runs --root {out}`")
    broken = [s["name"] for s in rows if not s["met"]]
    if broken:
        print(f"[grpo-diag] the scenario contract did not hold for {broken} on this machine: those runs do not show "
              "what the scenario claims (see the contract column).")
    return rows
