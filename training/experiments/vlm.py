"""The papers' comparison in miniature, on the tiny vision-language default: from the same weak and
strong VLM bases (training/bases/vlm-weak, vlm-strong), GRPO and SFT on the image task, and SFT on the
text form only; every run evaluated on the images ("heldout" or "digits-image") and on the same items
written out ("digits-text"), so transfer and forgetting across modalities are measured, not assumed.

    python -m training.experiments.vlm [--out runs/vlm-experiments] [--small]

Notebook 05 reads the runs back (with diag only) and says where the miniature agrees with the papers.
"""

from __future__ import annotations

import argparse
import time

from training.config import from_dict

BASES = ("vlm-weak", "vlm-strong")


def arm_configs(base: str, n_sft: int, rl_factor: int, n_eval: int, small: bool) -> list[dict]:
    sft_steps = max(1, 4 * n_sft // 16)  # 4 epochs of batch 16
    prompts, G = (2, 4) if small else (4, 4)
    rl_steps = max(1, rl_factor * n_sft // prompts)
    model = {"path": f"base:{base}"}
    evals = {"every": max(1, rl_steps // 5), "max_new_tokens": 6}
    sft = {"steps": sft_steps, "lr": 1e-3, "batch_size": 16, "eval_every": max(1, sft_steps // 4)}
    grpo = {"steps": rl_steps, "lr": 3e-4, "prompts_per_step": prompts, "num_generations": G,
            "max_completion_length": 6, "rewards": ["strict_correct", "digits_format"], "verifier": "strict_correct"}
    task = {"n_train": n_sft, "n_eval": n_eval}
    common = {"model": model, "monitor": {"console": False}}
    return [
        {"name": f"{base}-grpo-image", "kind": "grpo", "grpo": grpo, **common,
         "task": {**task, "name": "digits-image", "n_train": rl_factor * n_sft},
         "heldout": {**evals, "also": ["digits-text"]}},
        {"name": f"{base}-sft-image", "kind": "sft", "sft": sft, **common, "task": {**task, "name": "digits-image"},
         "heldout": {**evals, "also": ["digits-text"]}},
        {"name": f"{base}-sft-text", "kind": "sft", "sft": sft, **common, "task": {**task, "name": "digits-text"},
         "heldout": {**evals, "also": ["digits-image"]}},
    ]


def main(argv=None) -> list[str]:
    from training.cli import quiet_libraries
    from training.launch import launch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/vlm-experiments")
    p.add_argument("--small", action="store_true", help="smoke-sized settings (tests)")
    a = p.parse_args(argv)
    quiet_libraries()
    n_sft, factor, n_eval = (16, 2, 12) if a.small else (500, 10, 200)
    made = []
    for base in BASES:
        for d in arm_configs(base, n_sft, factor, n_eval, a.small):
            t = time.perf_counter()
            path = launch(from_dict(d, "training.experiments.vlm"), a.out, overwrite=True, progress=not a.small)
            print(f"{d['name']}: {time.perf_counter() - t:.0f} s", flush=True)
            made.append(str(path))
    return made


if __name__ == "__main__":
    main()
