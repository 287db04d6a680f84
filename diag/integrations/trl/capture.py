"""The hook: after every generation batch, the whole batch's rewards per function, advantages, lengths
(gathered from every process with the truth flags, one collective), prompts and completions go to the
Recorder on the main process, and the hook's own numbers into TRL's metric stream; the remedies
(dynamic sampling, prompt skipping) run around generation; the run's stop is decided once for every
rank. Held-out evaluation is the Evaluation half (diag.integrations.trl.heldout)."""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

import numpy as np

from diag.environment import reproducibility
from diag.integrations.dynamic_sampling import refill
from diag.integrations.prompt_skip import DeadPrompts
from diag.integrations.trl.config import DiagConfig, HeldOut, Verifier
from diag.integrations.trl.contract import check_contract
from diag.integrations.trl.heldout import Evaluation
from diag.monitor import Monitor
from diag.recorder import Recorder


def completion_text(c: Any) -> str:
    """A completion as the text a verifier reads: a string as is, a chat completion's message contents."""
    if isinstance(c, str):
        return c
    if isinstance(c, list) and all(isinstance(m, dict) for m in c):
        parts = [m.get("content", "") for m in c]
        return "".join(p if isinstance(p, str) else " ".join(b.get("text", "") for b in p if isinstance(b, dict))
                       for p in parts)
    return str(c)


def _versions() -> dict:
    import importlib.metadata as md

    out = {}
    for pkg in ("grpo-diag", "trl", "transformers", "torch", "accelerate", "vllm"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _json_config(args) -> dict:
    out = {}
    for k, v in args.to_dict().items():
        if isinstance(v, (str, int, float, bool)) or v is None:
            out[k] = v
        elif isinstance(v, (list, tuple)) and all(isinstance(x, (str, int, float, bool)) for x in v):
            out[k] = list(v)
    return out


class Capture(Evaluation):
    """The per-batch hook plus the callbacks; holds the Recorder on the main process only."""

    def __init__(self, trainer, config: DiagConfig):
        check_contract(trainer)
        self.trainer = trainer
        self.config = config
        self.main = trainer.accelerator.is_main_process
        names = list(trainer.reward_func_names)
        self.names = names
        if config.verifier is not None and config.verifier not in names:
            raise ValueError(f"DiagConfig.verifier={config.verifier!r} is not a reward function; have {names}")
        self.verifier_idx = names.index(config.verifier) if config.verifier else (0 if len(names) == 1 else None)
        self.stop_ids = self._stop_ids()  # fixed once the trainer is built
        if config.dynamic_sampling is not None or config.skip_dead is not None:
            rows = trainer.args.per_device_train_batch_size * trainer.args.steps_per_generation
            if rows % trainer.num_generations:
                raise ValueError(f"dynamic sampling and prompt skipping need whole groups on each process: {rows} "
                                 "completions per "
                                 f"process per generation is not a multiple of num_generations="
                                 f"{trainer.num_generations}; make per_device_train_batch_size x "
                                 "steps_per_generation a multiple of it")
        self.dead = None if config.skip_dead is None else DeadPrompts(config.skip_dead)
        self.skips = {"skipped": 0, "unreplaced": 0}  # this process's skips since the last record
        ho = config.heldout
        self.heldouts: list[HeldOut] = [] if ho is None else [ho] if isinstance(ho, HeldOut) else list(ho)
        set_names = [h.name for h in self.heldouts]
        if len(set(set_names)) != len(set_names):
            raise ValueError(f"held-out sets need distinct names; got {set_names}")
        self.truth_fn: Verifier | None = (config.truth if callable(config.truth) else
                                          self.heldouts[0].verifier if config.truth is None and self.heldouts else None)
        self.truth_errors = 0
        self.gen_calls = 0
        self.failed = False
        self.last_eval_step: int | None = None
        self.recorder: Recorder | None = None
        self.monitor: Monitor | None = None
        self.offset = config.step_offset
        self.owned = config.recorder is None  # a recorder passed in is the caller's to close
        self.best_accuracy = -1.0
        if self.main and not self.owned:
            self.recorder, self.monitor = config.recorder, config.live_monitor
            self.best_accuracy = float((self.recorder.writer.meta.get("best_checkpoint") or {}).get("accuracy", -1.0))
        elif self.main:
            self.recorder = self._make_recorder()
            for fn in config.listeners:
                self.recorder.subscribe(fn)
            if config.monitor is not None:
                self.monitor = Monitor(self.recorder, config.monitor, func_names=self.names,
                                       group_size=trainer.num_generations)
                self.recorder.subscribe(self.monitor)

    def _make_recorder(self) -> Recorder:
        t, cfg = self.trainer, self.config
        model = t.accelerator.unwrap_model(t.model)
        name = cfg.name or f"grpo-{time.strftime('%Y%m%d-%H%M%S')}"
        meta = {
            "framework": "trl",
            "source": "live",
            "versions": _versions(),
            "model": getattr(model.config, "_name_or_path", None) or type(model).__name__,
            "scale_rewards": getattr(t.args, "scale_rewards", None),
            "loss_type": getattr(t.args, "loss_type", None),
            "num_processes": t.accelerator.num_processes,
            "verifier": self.names[self.verifier_idx] if self.verifier_idx is not None else None,
            "truth": None if self.truth_fn is None else ("given" if callable(cfg.truth) else
                                                         f"held-out verifier ({self.heldouts[0].name})"),
            "pass_threshold": cfg.pass_threshold,
            "max_completion_length": getattr(t.args, "max_completion_length", None),
            "heldout": None if not self.heldouts else {"name": self.heldouts[0].name, "n": len(self.heldouts[0].rows),
                                                       "every": self.heldouts[0].every, "k": self.heldouts[0].k},
            "heldout_sets": [{"name": h.name, "n": len(h.rows), "every": h.every, "k": h.k} for h in self.heldouts],
            "config": _json_config(t.args),
            "dynamic_sampling": None if cfg.dynamic_sampling is None else {"max_rounds": cfg.dynamic_sampling.max_rounds},
            "skip_dead": None if cfg.skip_dead is None else {"after": cfg.skip_dead.after, "p": cfg.skip_dead.p},
            **cfg.meta,
        }
        meta["reproducibility"] = reproducibility({"seed": getattr(t.args, "seed", None),
                                                   "data_seed": getattr(t.args, "data_seed", None)})
        weights = [float(w) for w in t.reward_weights.tolist()]
        return Recorder(cfg.root, name, self.names, weights, t.num_generations, meta=meta,
                        flush_secs=cfg.flush_secs, sample_groups=cfg.sample_groups,
                        max_completions=cfg.max_completions, on_write_error=cfg.on_write_error,
                        overwrite=cfg.overwrite)

    # --------------------------------------------------------------------------- per batch

    def on_batch(self, inputs: list, output: dict, extra_round: bool = False) -> None:
        t = self.trainer
        mode = "train" if t.model.training else "eval"
        # A collective: every rank reaches this line on every batch, even after the main process has
        # disabled capture (skipping it there alone would hang the other ranks in their gather).
        truth = self._judge_truth(inputs) if self.truth_fn is not None else None  # this process's slice
        lengths, clipped, truth = self._lengths(output, truth)
        if self.dead is not None and mode == "train":  # every rank: the history must agree everywhere
            n = len(inputs) * t.accelerator.num_processes
            self.dead.observe(list(t._logs["prompt"])[-n:], list(t._logs["advantages"])[-n:], t.num_generations)
        if not self.main or self.failed:
            return
        try:
            self._record(inputs, mode, lengths, clipped, truth, to_trl=not extra_round)
        except Exception as e:  # noqa: BLE001 - diagnostics must never take a training run down
            self.failed = True
            print(f"[grpo-diag] capture disabled after an error: {type(e).__name__}: {e}", file=sys.stderr)

    def _judge_truth(self, inputs: list) -> list[float]:
        """The truth function on this process's completions (TRL gathered the batch's text on every rank;
        this rank's slice is its own rows): 1 / 0, NaN where the function raised (counted, said once)."""
        t = self.trainer
        n, k = len(inputs), t.accelerator.process_index
        texts = list(t._logs["completion"])[-n * t.accelerator.num_processes:][k * n:(k + 1) * n]
        out = []
        for text, row in zip(texts, inputs):
            try:
                out.append(float(bool(self.truth_fn(completion_text(text), row))))
            except Exception as e:  # noqa: BLE001 - a failing check must not take training down
                out.append(float("nan"))
                self.truth_errors += 1
                if self.truth_errors == 1:
                    print(f"[grpo-diag] the truth function raised {type(e).__name__}: {e}; such completions are "
                          "recorded as not judged", file=sys.stderr)
        return out

    def _lengths(self, output: dict, truth: list[float] | None = None):
        """(lengths, clipped, truth) of the whole batch, gathered from every process in one collective
        (the truth flags travel with the lengths). Lengths are None where the output lacks the tensors."""
        import torch

        mask, ids = output.get("completion_mask"), output.get("completion_ids")
        cols = []
        if mask is not None and ids is not None:
            stops = self.stop_ids
            lengths = mask.sum(dim=1)
            if stops:
                # TRL's rule: a completion is clipped unless its last kept token is a stop id (the mask
                # ends at the first EOS; a pad sampled mid-completion does not end it).
                last = ids.gather(1, (lengths.long() - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
                clipped = ~torch.isin(last, torch.tensor(stops, device=ids.device)) & (lengths > 0)
            else:
                clipped = torch.zeros_like(lengths, dtype=torch.bool)
            cols = [lengths.to(torch.float64), clipped.to(torch.float64)]
        device = cols[0].device if cols else self.trainer.accelerator.device
        if truth is not None:
            cols.append(torch.tensor(truth, dtype=torch.float64, device=device))
        if not cols:
            return None, None, None
        both = self.trainer.accelerator.gather(torch.stack(cols, dim=1)).cpu().numpy()  # [n x cols], all processes
        truth_all = both[:, -1] if truth is not None else None
        if mask is None or ids is None:
            return None, None, truth_all
        return both[:, 0].astype(np.int64), both[:, 1].astype(bool), truth_all

    def _stop_ids(self) -> list[int]:
        """The ids that end a completion, as TRL counts them for its clipped ratio: every id of
        `trainer.eos_token_ids` (the tokenizer's EOS and the generation config's, e.g. a chat model's
        end-of-turn `<|im_end|>`) and the pad id."""
        t = self.trainer
        tok = getattr(t.processing_class, "tokenizer", t.processing_class)
        ids = list(getattr(t, "eos_token_ids", None) or [])
        if not ids:  # an older trainer: the tokenizer's EOS and the generation config's
            gen = getattr(getattr(t.model, "generation_config", None), "eos_token_id", None)
            ids = [getattr(tok, "eos_token_id", None), *(gen if isinstance(gen, list) else [gen])]
        ids.append(getattr(tok, "pad_token_id", None))
        return sorted({int(i) for i in ids if i is not None})

    def _record(self, inputs: list, mode: str, lengths, clipped, truth=None, to_trl: bool = True) -> None:
        t = self.trainer
        n = len(inputs) * t.accelerator.num_processes
        logs = t._logs
        have = len(logs["advantages"])
        if have < n:
            raise ValueError(f"TRL logged {have} rows for a batch of {n}; was log rotation changed?")
        rewards = np.array([list(logs["rewards"][name])[-n:] for name in self.names], dtype=float).T
        advantages = np.asarray(list(logs["advantages"])[-n:], dtype=float)
        prompts = list(logs["prompt"])[-n:]
        completions = list(logs["completion"])[-n:]
        G = t.num_generations if mode == "train" else t.num_generations_eval
        passed = None
        if self.verifier_idx is not None:
            passed = rewards[:, self.verifier_idx] >= self.config.pass_threshold
        self.gen_calls += 1
        # The batch trains the step about to happen; TRL logs that step 1-based.
        step = self.offset + t.state.global_step + (1 if mode == "train" else 0)
        if lengths is not None and len(lengths) != n:
            lengths = clipped = None
        if truth is not None and len(truth) != n:
            truth = None
        row = self.recorder.log_batch(
            step, rewards, group_size=G, advantages=advantages, lengths=lengths, clipped=clipped,
            passed=passed, truth=None if truth is None else [None if np.isnan(v) else bool(v) for v in truth],
            prompts=prompts, completions=completions, mode=mode,
            gen_call=self.gen_calls,
        )
        # Into TRL's own metric stream, so W&B / TensorBoard users see them under diag/ (the model's own
        # batch only: a dynamic-sampling refill round is in the store, not averaged into these).
        if not to_trl:
            return
        metrics = t._metrics[mode]
        for key in ("frac_zero_signal", "frac_all_fail", "frac_all_pass", "frac_tied", "effective_batch",
                    "adv_var_mean", "frac_clipped", "truth_rate", "untrue_share"):
            v = row.get(key)
            if v is not None and np.isfinite(v):
                metrics[f"diag/{key}"].append(float(v))

    def before_generation(self, inputs: list) -> list:
        """With prompt skipping, the training batch's dead prompts replaced before they are generated."""
        t = self.trainer
        if self.dead is None or not t.model.training:
            return inputs
        acc = t.accelerator
        rng = np.random.default_rng([self.config.skip_dead.seed, t.state.global_step, acc.process_index,
                                     sum(self.skips.values()), len(self.dead.streak)])
        inputs, stats = self.dead.filter(inputs, t.train_dataset, t.num_generations, rng)
        for k, v in stats.items():
            self.skips[k] += v
        return inputs

    def after_generation(self, inputs: list, output: dict, generate: Callable[[list], dict]) -> dict:
        """Record the batch; with dynamic sampling, refill its dead groups (each extra round recorded
        too) and record what the refill cost; with prompt skipping, record what was skipped."""
        self.on_batch(inputs, output)
        ds = self.config.dynamic_sampling
        t = self.trainer
        if not t.model.training:
            return output
        step = self.offset + t.state.global_step + 1
        values: dict[str, float] = {}
        if ds is not None:
            def round_(fresh: list) -> dict:
                fresh = self.before_generation(fresh)
                new = generate(fresh)
                self.on_batch(fresh, new, extra_round=True)
                return new

            output, stats = refill(t, inputs, output, round_, ds, step)
            values.update({f"diag/dynamic_{k}": float(v) for k, v in stats.items()})
        if self.dead is not None:
            values.update(self._skip_totals())
        if values and self.main and not self.failed:
            self.recorder.log_scalars(step, values)
            for k in ("diag/dynamic_live_share", "diag/dynamic_rounds", "diag/skip_skipped"):
                if k in values:
                    t._metrics["train"][k].append(values[k])
        return output

    def _skip_totals(self) -> dict[str, float]:
        """This generation's skips summed over processes (a collective: every rank calls it alike)."""
        import torch

        acc = self.trainer.accelerator
        both = torch.tensor([float(self.skips["skipped"]), float(self.skips["unreplaced"])], device=acc.device)
        if acc.num_processes > 1:
            both = acc.reduce(both, reduction="sum")
        self.skips = {"skipped": 0, "unreplaced": 0}
        skipped, unreplaced = both.tolist()
        return {"diag/skip_skipped": skipped, "diag/skip_unreplaced": unreplaced,
                "diag/skip_completions_saved": skipped * self.trainer.num_generations,
                "diag/skip_known_dead": float(self.dead.known_dead())}

    def should_stop(self) -> bool:
        """Every rank must stop together: the main process's decision is shared when there are several."""
        want = bool(self.monitor is not None and self.monitor.stop_requested)
        # the same answer on every rank (the collective below runs only where stopping is possible); a
        # phased run passes its recorder on one process and asks its own monitor
        if self.owned and (self.config.monitor is None or not self.config.monitor.stop_on):
            return False
        acc = self.trainer.accelerator
        if acc.num_processes > 1:
            import torch

            flag = torch.tensor([1.0 if want else 0.0], device=acc.device)
            return bool(acc.reduce(flag, reduction="sum").item() > 0)
        return want

    def record_processes(self) -> None:
        """After a finished run, every rank's last optimizer step into run.json (a collective): the
        proof that a stop decided on the main process stopped every rank at the same step."""
        acc = self.trainer.accelerator
        if acc.num_processes < 2:
            return
        from accelerate.utils import gather_object

        steps = gather_object([int(self.trainer.state.global_step)])
        if self.recorder is not None:
            self.recorder.update_meta(processes={"num_processes": acc.num_processes,
                                                 "backend": str(getattr(acc.state, "backend", None)),
                                                 "final_step_per_rank": [int(s) for s in steps]})

    def close(self, status: str, error: str | None = None) -> None:
        if not self.owned:
            return
        if self.monitor is not None:
            self.monitor.close()
        if self.recorder is not None and not self.recorder.closed:
            if self.monitor is not None and self.monitor.stop_requested:
                self.recorder.update_meta(stop_reason=self.monitor.stop_requested)
            self.recorder.close(status, error=error)
