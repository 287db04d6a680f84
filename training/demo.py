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


def prepare_bases(cfgs: list[RunConfig]) -> None:
    """Build every SFT base the scenarios need in one SFT run (checkpoints of one run, as in the papers)."""
    from training.models import base_path

    bases = [c.model for c in cfgs if c.model.path == "base"]
    if bases:
        steps = tuple(sorted({m.base_steps for m in bases}))
        base_path(bases[0], extra_steps=steps)


def run_demo(out: str, only: list[str] | None = None) -> list[dict]:
    from rich.console import Console
    from rich.table import Table

    from diag import open_run
    from diag.summary import summarize
    from training.launch import launch

    t0 = time.perf_counter()
    cfgs = scenario_configs(only)
    prepare_bases(cfgs)
    t_bases = time.perf_counter() - t0
    rows = []
    for cfg in cfgs:
        t = time.perf_counter()
        path = launch(cfg, out, overwrite=True)
        s = summarize(open_run(Path(path)))
        s["wall_s"] = time.perf_counter() - t
        rows.append(s)
    total = time.perf_counter() - t0

    table = Table(title=f"grpo-diag demo: {total:.0f} s in all ({t_bases:.0f} s building SFT bases)")
    for col in ("run", "reward start/peak/end", "held-out acc start/peak/end", "mean all-fail", "wall s"):
        table.add_column(col)
    f = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    for s in rows:
        table.add_row(s["name"], f"{f(s['reward_start'])} / {f(s['reward_peak'])} / {f(s['reward_end'])}",
                      f"{f(s['accuracy_start'])} / {f(s['accuracy_peak'])} / {f(s['accuracy_end'])}",
                      f(s["frac_all_fail_mean"]), f"{s['wall_s']:.0f}")
    Console().print(table)
    print(f"runs written under {Path(out).resolve()}; inspect with `grpo-diag runs --root {out}`")
    return rows
