"""Plain GRPO against each remedy, from the same weak base, over several seeds: does the remedy buy
held-out accuracy for what it costs?

Arms (every one the shipped weak base on add2, 100 GRPO steps of 8 prompts x G=8, a 200-prompt training
pool: 4 epochs, so prompts come back and dead ones can be skipped):
  plain      GRPO as configured
  dynamic    [remedy] dynamic_sampling = true, max_rounds = 3
  skip       [remedy] skip_dead = true (after 2 dead visits, p = 0.8)
  fallback   [remedy] on_signal_gap = "sft" (monitor-confirmed gap -> 600 SFT steps -> GRPO again)

Per seed, the runs are compared at the budgets all of them reached (diag.budget.compare: the shortest
wall time, the fewest generated tokens); the table gives the mean and range over seeds. Every number is
read from the runs. The dashboard's compare page shows the same table for any runs picked there.

    python benchmarks/remedies.py --out runs/remedies --seeds 0 1 2
    python benchmarks/remedies.py --out runs/remedies --seeds 0 1 2 --no-train   # summarise existing runs
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

ARMS = {
    "plain": {},
    "dynamic": {"dynamic_sampling": True, "max_rounds": 3},
    "skip": {"skip_dead": True, "skip_after": 2, "skip_prob": 0.8},
    "fallback": {"on_signal_gap": "sft", "fallback_when": "monitor"},
}


def config(arm: str, seed: int):
    from training.config import from_dict

    return from_dict({
        "name": f"{arm}-s{seed}", "seed": seed, "model": {"path": "base:weak"},
        "task": {"name": "add2", "n_train": 200, "n_eval": 300},
        "grpo": {"steps": 100, "num_generations": 8, "prompts_per_step": 8, "max_completion_length": 16,
                 "rewards": ["strict_correct"]},
        "sft": {"steps": 600, "eval_every": 200}, "heldout": {"every": 10},
        "probe": {"prompts": 100}, "monitor": {"console": False}, "remedy": ARMS[arm],
    })


def train(out: Path, seeds: list[int]) -> None:
    from training.cli import quiet_libraries
    from training.launch import launch

    quiet_libraries()
    for seed in seeds:
        for arm in ARMS:
            t = time.perf_counter()
            launch(config(arm, seed), str(out), overwrite=True, progress=False)
            print(f"trained {arm}-s{seed} in {time.perf_counter() - t:.1f} s", flush=True)


def _agg(xs: list) -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "n/a"
    f = (lambda v: f"{v:.0f}") if max(abs(x) for x in xs) >= 1000 else (lambda v: f"{v:.3g}")  # noqa: E731
    return f"{f(statistics.mean(xs))} [{f(min(xs))}, {f(max(xs))}]" if len(xs) > 1 else f(xs[0])


def summarise(out: Path, seeds: list[int]) -> list[dict]:
    import diag
    from diag.budget import compare

    rows = []
    for seed in seeds:
        runs = [diag.open_run(out / f"{arm}-s{seed}") for arm in ARMS]
        per = compare(runs)
        plain = per[0]
        for arm, r in zip(ARMS, per):
            r.update(arm=arm, seed=seed, token_ratio=r["generated_tokens"] / plain["generated_tokens"],
                     seconds_ratio=r["seconds"] / plain["seconds"])
            rows.append(r)
    print(f"{len(seeds)} seed(s): {seeds}; mean [min, max] over seeds; budgets per seed = the smallest any arm spent\n")
    cols = ("effective_batch", "generated_tokens", "token_ratio", "seconds", "seconds_ratio", "accuracy_end",
            "accuracy_at_wall", "accuracy_at_tokens", "gain_per_second")
    print("| arm | remedy | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for arm in ARMS:
        mine = [r for r in rows if r["arm"] == arm]
        print(f"| {arm} | {mine[0]['remedy']} | " + " | ".join(_agg([r[c] for r in mine]) for c in cols) + " |")
    budgets = {r["seed"]: (r["wall_budget"], r["token_budget"]) for r in rows}
    print("\nbudgets (seconds, tokens) per seed: " + ", ".join(f"s{s}: ({w:.1f}, {t:.0f})" for s, (w, t) in budgets.items()))
    print("starting accuracy (step 0) per arm: " + ", ".join(
        f"{arm} {_agg([r['accuracy_start'] for r in rows if r['arm'] == arm])}" for arm in ARMS))
    return rows


NAMES = {"plain": "plain GRPO", "dynamic": "dynamic sampling (3 rounds)", "skip": "skip dead prompts",
         "fallback": "SFT fallback"}
NUMERIC = ("effective_batch", "generated_tokens", "token_ratio", "seconds", "seconds_ratio", "accuracy_start",
           "accuracy_end", "accuracy_at_wall", "accuracy_at_tokens", "gain_per_second", "wall_budget", "token_budget")


def figures(rows: list[dict]) -> dict:
    """What the results file keeps: every seed's row, and per arm the mean, min and max of each figure
    (remedies.ARM_FIGURE_mean / _min / _max), which the guides cite."""
    out: dict = {"seeds": sorted({r["seed"] for r in rows}), "n_seeds": len({r["seed"] for r in rows}),
                 "rows": [{k: r.get(k) for k in ("arm", "seed", *NUMERIC)} for r in rows]}
    for arm in ARMS:
        for k in NUMERIC:
            xs = [r[k] for r in rows if r["arm"] == arm and r.get(k) is not None]
            if xs:
                out[f"{arm}_{k}_mean"], out[f"{arm}_{k}_min"], out[f"{arm}_{k}_max"] = statistics.mean(xs), min(xs), max(xs)
    return out


def table(fig: dict) -> str:
    """The guide's table (docs/remedies.md), drawn from the recorded figures."""
    def rng(arm, k, f):
        return (f"{format(fig[f'{arm}_{k}_mean'], f)} [{format(fig[f'{arm}_{k}_min'], f)}, "
                f"{format(fig[f'{arm}_{k}_max'], f)}]")

    lines = ["| arm | effective batch (of 64) | generated tokens | wall s | accuracy at the end | at equal wall time | "
             "at equal tokens | accuracy gain per wall s |", "|---|---|---|---|---|---|---|---|"]
    for arm, name in NAMES.items():
        g = lambda k: fig[f"{arm}_{k}_mean"]  # noqa: E731
        lines.append(f"| {name} | {rng(arm, 'effective_batch', '.1f')} | {g('generated_tokens') / 1000:.1f}K "
                     f"({g('token_ratio'):.2f}x) | {g('seconds'):.1f} ({g('seconds_ratio'):.2f}x) | "
                     f"{rng(arm, 'accuracy_end', '.3f')} | {g('accuracy_at_wall'):.3f} | {g('accuracy_at_tokens'):.3f} | "
                     f"{g('gain_per_second'):+.4f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/remedies")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--record", action="store_true", help="keep the figures in benchmarks/results.json (entry remedies)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    if not a.no_train:
        train(out, a.seeds)
    rows = summarise(out, a.seeds)
    if a.record:
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from common import record

        record("remedies", figures(rows))


if __name__ == "__main__":
    main()
