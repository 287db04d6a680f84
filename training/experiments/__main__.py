"""Run an experiment grid and print its results table (held-out accuracy per bucket, data, wall time)."""

from __future__ import annotations

import argparse
import math
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from training.config import from_dict


@dataclass
class Grid:
    name: str
    task: str
    n_sft: int
    sft_epochs: int
    rl_prompt_factor: int
    n_eval: int
    bases: list
    prompts_per_step: int
    num_generations: int
    grpo_lr: float
    sft_lr: float
    seed: int = 0


def load(path: Path, small: bool) -> Grid:
    g = Grid(**tomllib.loads(path.read_text()))
    if small:  # a smoke-sized grid for tests
        g.n_sft, g.rl_prompt_factor, g.n_eval, g.prompts_per_step, g.num_generations = 32, 2, 40, 4, 4
    return g


def arm_configs(g: Grid, base: int) -> list[dict]:
    tag = f"{g.name}-b{base}"
    sft_steps = max(1, math.ceil(g.sft_epochs * g.n_sft / 16))
    rl_steps = max(1, g.rl_prompt_factor * g.n_sft // g.prompts_per_step)
    model = {"path": "base", "base_steps": base}
    common = {"task": {"name": g.task, "n_train": g.n_sft, "n_eval": g.n_eval, "seed": g.seed}, "seed": g.seed,
              "heldout": {"every": max(1, rl_steps // 5)}, "monitor": {"console": False}}
    sft = {"steps": sft_steps, "lr": g.sft_lr, "batch_size": 16, "eval_every": max(1, sft_steps // 4)}
    grpo = {"steps": rl_steps, "lr": g.grpo_lr, "prompts_per_step": g.prompts_per_step,
            "num_generations": g.num_generations, "max_completion_length": 16, "rewards": ["strict_correct"]}
    rl_task = {**common["task"], "n_train": g.rl_prompt_factor * g.n_sft}
    return [
        {"name": f"{tag}-sft", "kind": "sft", "model": model, "sft": sft, **common},
        {"name": f"{tag}-grpo", "kind": "grpo", "model": model, "grpo": grpo, **common, "task": rl_task},
        {"name": f"{tag}-sftgrpo", "kind": "sft_grpo", "model": model, "sft": sft, "grpo": grpo, **common,
         "task": rl_task},
    ]


def results_table(rows: list[dict]) -> str:
    buckets = sorted({b for r in rows for b in r["buckets"]})
    head = "| run | base | arm | data | " + " | ".join(buckets) + " | all (start -> end) | wall s |"
    lines = [head, "|" + "---|" * (len(buckets) + 6)]
    for r in rows:
        cells = " | ".join(f"{r['buckets'].get(b, float('nan')):.2f}" for b in buckets)
        lines.append(f"| {r['run']} | {r['base']} | {r['arm']} | {r['data']} | {cells} | "
                     f"{r['start']:.2f} -> {r['end']:.2f} | {r['wall']:.0f} |")
    return "\n".join(lines)


def summarize_run(path: Path, base: int, arm: str, data: str, wall: float) -> dict:
    import polars as pl

    import diag
    from diag.summary import accuracy_series, bucket_series

    run = diag.open_run(path)
    acc, by_bucket = accuracy_series(run.evals), bucket_series(run.evals)
    last = by_bucket.filter(pl.col("step") == by_bucket["step"].max())
    return {"run": run.name, "path": str(path), "base": base, "arm": arm, "data": data, "wall": wall,
            "buckets": dict(zip(last["bucket"], last["value"])),
            "start": acc["value"][0], "end": acc["value"][-1]}


def main(argv=None) -> list[dict]:
    from training.cli import quiet_libraries
    from training.launch import launch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", nargs="?", default=str(Path(__file__).parent / "sft-vs-rl.toml"))
    p.add_argument("--out", default="runs/experiments")
    p.add_argument("--small", action="store_true", help="smoke-sized settings")
    a = p.parse_args(argv)
    quiet_libraries()
    g = load(Path(a.config), a.small)
    rows = []
    for base in g.bases:
        for d in arm_configs(g, base):
            cfg = from_dict(d, a.config)
            t = time.perf_counter()
            path = launch(cfg, a.out, overwrite=True, progress=not a.small)
            arm = {"sft": "SFT", "grpo": "GRPO", "sft_grpo": "SFT then GRPO"}[cfg.kind]
            data = {"sft": f"{g.n_sft} examples x {g.sft_epochs} epochs",
                    "grpo": f"{g.rl_prompt_factor * g.n_sft} prompts x G={g.num_generations}",
                    "sft_grpo": f"{g.n_sft} examples, then {g.rl_prompt_factor * g.n_sft} prompts"}[cfg.kind]
            rows.append(summarize_run(Path(path), base, arm, data, time.perf_counter() - t))
    print(results_table(rows))
    return rows


if __name__ == "__main__":
    main()
