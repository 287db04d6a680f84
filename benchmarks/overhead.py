"""Instrumentation overhead: instrumented vs plain TRL GRPO step time, interleaved in one run.

One DiagGRPOTrainer trains; the capture hook is switched on and off on alternate steps, so both
arms share the model, data, process and machine load. Held-out evaluation is off here (it is work,
not overhead) and measured separately at the end. Prints a table; `--json` writes the numbers.

    python benchmarks/overhead.py [--steps 200] [--prompts 16] [--G 8] [--device cpu|cuda]
    python benchmarks/overhead.py --model smollm2-135m --task gsm --steps 14 --warmup 2 --prompts 2 --G 4 --max-len 64

With a real model, step times vary with how long the sampled completions are, so the ratio of medians
is noisy; the hook's own time (measured inside every instrumented step) is the precise figure.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


def measure(steps: int, prompts: int, G: int, device: str, hidden: int, layers: int, heads: int,
            max_len: int, base_steps: int | None, model_spec: str | None = None, task: str = "add2",
            warmup: int = 10) -> dict:
    import torch
    from transformers import TrainerCallback

    from training.cli import quiet_libraries
    from training.config import from_dict
    from training.grpo import build_trainer, quiet

    quiet_libraries()
    model = {"path": "tiny", "hidden": hidden, "layers": layers, "heads": heads}
    if base_steps:
        model.update(path="base", base_steps=base_steps)
    rewards, lr, n_eval = ["strict_correct"], 1e-4, 300
    if model_spec:  # a real model: chat word problems, its own reward functions
        model = {"path": model_spec}
        rewards, lr, n_eval = ["answer_correct", "answer_format"], 1e-5, 32
    cfg = from_dict({
        "name": "overhead", "model": model, "task": {"name": task, "n_train": 4000, "n_eval": n_eval},
        "grpo": {"steps": steps, "lr": lr, "num_generations": G, "prompts_per_step": prompts,
                 "max_completion_length": max_len, "rewards": rewards},
        # evaluation only at the very end: it is reported separately, not as overhead
        "heldout": {"every": 10**9},
    })
    root = tempfile.mkdtemp(prefix="grpo-diag-bench-")
    trainer = build_trainer(cfg, root, overwrite=True)
    quiet(trainer)
    cap = trainer._diag
    on_batch = cap.on_batch
    hook_s: list[float] = []

    def timed_on_batch(inputs, output):
        t = time.perf_counter()
        on_batch(inputs, output)
        hook_s.append(time.perf_counter() - t)

    times: dict[bool, list[float]] = {True: [], False: []}

    class Toggle(TrainerCallback):
        t0 = 0.0

        def on_step_begin(self, args, state, control, **kw):
            # even steps instrumented, odd steps plain
            cap.on_batch = timed_on_batch if state.global_step % 2 == 0 else (lambda i, o: None)
            if device == "cuda":
                torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if device == "cuda":
                torch.cuda.synchronize()
            instrumented = (state.global_step - 1) % 2 == 0
            if state.global_step > warmup:  # warm-up excluded
                times[instrumented].append(time.perf_counter() - self.t0)

    trainer.add_callback(Toggle())
    trainer.train()
    t = time.perf_counter()
    cap.last_eval_step = None
    ev = cap.evaluate(steps + 1)
    eval_s = time.perf_counter() - t
    med_on, med_off = statistics.median(times[True]), statistics.median(times[False])
    n_params = sum(p.numel() for p in trainer.model.parameters())
    return {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "model": model_spec or model["path"],
        "params": n_params,
        "completions_per_step": prompts * G,
        "steps_each_arm": len(times[True]),
        "median_step_plain_s": med_off,
        "median_step_instrumented_s": med_on,
        "ratio": med_on / med_off,
        "hook_median_ms": 1000 * statistics.median(hook_s),
        "hook_share_of_step": statistics.median(hook_s) / med_off,
        "step_plain_range_s": [min(times[False]), max(times[False])],
        "step_plain_min_s": min(times[False]),
        "step_plain_max_s": max(times[False]),
        "heldout_eval_s": eval_s,
        "heldout_items": ev["frame"]["n"][0] if ev else None,
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--G", type=int, default=8)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--max-len", type=int, default=16)
    p.add_argument("--base-steps", type=int, default=1500, help="SFT base checkpoint (0 = random model)")
    p.add_argument("--model", help="a real model instead of the embedded one (e.g. smollm2-135m, a Hub id)")
    p.add_argument("--task", default="add2", help="task (gsm for real instruct models)")
    p.add_argument("--warmup", type=int, default=10, help="first steps left out of the medians")
    p.add_argument("--json", help="write the result here")
    p.add_argument("--record", action="store_true", help="keep the figures in benchmarks/results.json")
    p.add_argument("--entry", default="overhead", help="the results file's entry to record as (default overhead)")
    a = p.parse_args(argv)
    from benchmarks.common import report

    r = measure(a.steps, a.prompts, a.G, a.device, a.hidden, a.layers, a.heads, a.max_len, a.base_steps or None,
                a.model, a.task, a.warmup)
    return report(r, a.json, record_as=a.entry if a.record else None)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
