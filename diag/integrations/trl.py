"""Instrument TRL's GRPOTrainer: one line in an existing script.

    trainer = DiagGRPOTrainer(model=..., reward_funcs=..., args=..., diag=DiagConfig(root="runs"))
    # or, on a trainer you already built:
    instrument(trainer, DiagConfig(root="runs", heldout=HeldOut(rows, verifier)))

Hook point (TRL 1.16, private, pinned, guarded by tests/test_trl_contract.py): after
`GRPOTrainer._generate_and_score_completions(inputs)` returns, the tails of
`self._logs["prompt" | "completion" | "rewards"[name] | "advantages"]` hold the whole generation
batch gathered from every process (n = len(inputs) * num_processes rows, each prompt G times in a
row), so the main process sees whole groups. Completion lengths and EOS come from the returned
local tensors and are gathered here (a collective: every rank runs the hook, only rank 0 writes).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from diag import schema
from diag.environment import reproducibility
from diag.integrations.dynamic_sampling import DynamicSampling, refill
from diag.integrations.prompt_skip import DeadPrompts, SkipDead
from diag.integrations.rows import row_images, sent_prompt
from diag.monitor import Monitor, MonitorConfig
from diag.recorder import Recorder

TESTED_TRL = (">=1.16", "<1.17")
CONTRACT_ATTRS = ("_generate_and_score_completions", "_logs", "_metrics", "num_generations",
                  "num_generations_eval", "reward_func_names", "reward_weights", "accelerator")

Verifier = Callable[[str, dict], bool]


def completion_text(c: Any) -> str:
    """A completion as the text a verifier reads: a string as is, a chat completion's message contents."""
    if isinstance(c, str):
        return c
    if isinstance(c, list) and all(isinstance(m, dict) for m in c):
        parts = [m.get("content", "") for m in c]
        return "".join(p if isinstance(p, str) else " ".join(b.get("text", "") for b in p if isinstance(b, dict))
                       for p in parts)
    return str(c)


class ContractError(RuntimeError):
    """TRL's internals no longer look like the ones this adapter was written against."""


@dataclass
class HeldOut:
    """A held-out evaluation every `every` optimizer steps, scored by a strict task verifier.

    rows: dicts with a "prompt" (text or chat messages) and whatever the verifier reads ("answer").
    verifier(completion_text, row) -> bool. Greedy accuracy always; with k > 1 also sampled
    mean@k / pass@k. Rows with a `bucket_key` entry are also scored per difficulty bucket.
    """

    rows: Sequence[dict]
    verifier: Verifier
    every: int = 20
    name: str = "heldout"
    bucket_key: str | None = "bucket"
    batch_size: int = 256
    max_new_tokens: int = 32
    k: int = 1
    temperature: float = 1.0
    at_start: bool = True

    def __post_init__(self):
        if not self.rows:
            raise ValueError("HeldOut.rows is empty: pass the held-out items to evaluate")
        if "prompt" not in self.rows[0]:
            raise ValueError(f"HeldOut.rows need a 'prompt' key; the first row has {sorted(self.rows[0])}")
        if self.every < 1:
            raise ValueError("HeldOut.every must be >= 1 (optimizer steps between evaluations)")


@dataclass
class DiagConfig:
    root: str = "runs"
    name: str | None = None
    # Reward function whose value decides "passes the task" for all_fail / all_pass; None picks the
    # only function when there is one, else groups that tie are reported as "tied".
    verifier: str | None = None
    pass_threshold: float = 0.5
    # One held-out set, or several with distinct names (e.g. "image" and "text", in-domain and
    # out-of-domain), each evaluated every its own N steps; the first is the set the run trains for
    # (best checkpoint, online decoupling check, the transfer/forgetting finding's reference).
    heldout: HeldOut | Sequence[HeldOut] | None = None
    flush_secs: float = 2.0
    sample_groups: int = 2
    max_completions: int = 50_000
    on_write_error: str = "warn"
    overwrite: bool = False
    meta: dict = field(default_factory=dict)
    # Called as fn(kind, payload) for each step / eval / scalars event.
    listeners: list[Callable[[str, Any], None]] = field(default_factory=list)
    # The online detectors and their alert sinks; None turns live alerting off.
    monitor: MonitorConfig | None = field(default_factory=MonitorConfig)
    # Save the model whenever held-out accuracy reaches a new best (runs/<name>/best-checkpoint), so a
    # run stopped for a deceptive reward keeps its best model.
    keep_best: bool = False
    # Replace zero-signal groups by live ones from extra generation rounds (DAPO's dynamic sampling);
    # None trains on the batch as generated.
    dynamic_sampling: DynamicSampling | None = None
    # Skip prompts dead at their last visits before generating them (GRESO); None generates every prompt.
    skip_dead: SkipDead | None = None
    # A run in phases (e.g. GRPO, SFT, GRPO again) writes into one recorder: pass it here, with its live
    # monitor, and the steps already in the run (this trainer's step 1 is recorded as step_offset + 1).
    # The caller owns both and closes them; `listeners` and `monitor` are then not used.
    recorder: Recorder | None = None
    live_monitor: Monitor | None = None
    step_offset: int = 0
    # The task's strict check, truth(completion_text, dataset_row) -> bool, applied to every training
    # completion (never to the loss): the reward-truth gap per step. None uses the first held-out set's
    # verifier when there is one; False turns it off. Each process judges its own completions.
    truth: Verifier | bool | None = None


def check_contract(trainer) -> None:
    missing = [a for a in CONTRACT_ATTRS if not hasattr(trainer, a)]
    if not missing:
        logs = trainer._logs
        missing = [f"_logs[{k!r}]" for k in ("prompt", "completion", "rewards", "advantages") if k not in logs]
    if missing:
        import trl

        raise ContractError(
            f"TRL {trl.__version__} GRPOTrainer lacks {missing}; grpo-diag's hook was tested with "
            f"trl{','.join(TESTED_TRL)}. Install a tested TRL (pip install 'trl{','.join(TESTED_TRL)}')."
        )


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


class _Capture:
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

    # --------------------------------------------------------------------------- held-out eval

    def evaluate(self, step: int, due_only: bool = False) -> dict | None:
        """Held-out evaluation of every set (with `due_only`, the sets whose `every` divides the step),
        shared by every process: each rank generates for its slice of the items (rows[rank::N]) and the
        main process records the whole set, in item order. Every rank calls this at the same steps (it is
        a collective); only the main process logs and saves. Returns the first evaluated set's result."""
        if not self.heldouts or self.last_eval_step == step:
            return None
        due = [(i, h) for i, h in enumerate(self.heldouts) if not due_only or step % h.every == 0]
        if not due:
            return None
        self.last_eval_step = step
        results = [self._evaluate_set(h, step, primary=i == 0) for i, h in due]
        return results[0]

    def _evaluate_set(self, ho: HeldOut, step: int, primary: bool) -> dict | None:
        t = self.trainer
        t0 = time.perf_counter()
        acc = t.accelerator
        mine = list(range(acc.process_index, len(ho.rows), acc.num_processes))
        rows = [ho.rows[i] for i in mine]
        with _generation_model(t) as model:
            greedy = generate(model, t.processing_class, rows, ho.max_new_tokens, ho.batch_size)
            sampled = (generate(model, t.processing_class, rows, ho.max_new_tokens, ho.batch_size, k=ho.k,
                                temperature=ho.temperature) if ho.k > 1 else None)
        local = [(i, g, None if sampled is None else sampled[j]) for j, (i, g) in enumerate(zip(mine, greedy))]
        if acc.num_processes > 1:
            from accelerate.utils import gather_object

            local = gather_object(local)
        if not self.main or self.failed:
            return None
        done = dict((i, (g, ks)) for i, g, ks in local)
        greedy = [done[i][0] for i in range(len(ho.rows))]
        correct = [bool(ho.verifier(c, r)) for c, r in zip(greedy, ho.rows)]
        buckets = [str(r.get(ho.bucket_key, "all")) for r in ho.rows] if ho.bucket_key else None
        frame = self.recorder.log_eval(step, ho.name, correct, buckets=buckets, completions=greedy)
        result = float(np.mean(correct))
        if primary and self.config.keep_best and result > self.best_accuracy:
            # the processing class as trained with: a tokenizer, or a processor (which saves its tokenizer too)
            self._save_best(acc.unwrap_model(t.model), t.processing_class, step, result)
        if ho.k > 1:
            per_item = [[bool(ho.verifier(c, r)) for c in done[i][1]] for i, r in enumerate(ho.rows)]
            self.recorder.log_eval(step, ho.name, per_item, buckets=buckets)
        took = time.perf_counter() - t0
        key = "diag/heldout_seconds" if primary else f"diag/{ho.name}/heldout_seconds"
        self.recorder.log_scalars(step, {key: took}, mode="diag")
        t._metrics["train"][f"diag/{ho.name}/accuracy"].append(result)
        return {"accuracy": result, "seconds": took, "frame": frame}

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

    def _save_best(self, model, tok, step: int, acc: float) -> None:
        """Atomically replace runs/<name>/best-checkpoint: a crash mid-save keeps the previous best."""
        import shutil

        self.best_accuracy = acc
        dest = self.recorder.path / "best-checkpoint"
        tmp = self.recorder.path / ".best-checkpoint.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        old = self.recorder.path / ".best-checkpoint.old"
        shutil.rmtree(old, ignore_errors=True)
        if dest.exists():
            dest.rename(old)
        tmp.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
        self.recorder.update_meta(best_checkpoint={"step": step, "accuracy": acc, "path": str(dest)})

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


def _generation_model(trainer):
    """The model to generate with on this rank: TRL's own unwrapping (DDP, FSDP, DeepSpeed ZeRO-3 with
    its parameters gathered on every rank, a collective) when there are several processes."""
    import contextlib

    acc = trainer.accelerator
    if acc.num_processes > 1:
        from trl.models import unwrap_model_for_generation

        return unwrap_model_for_generation(trainer.model_wrapped, acc)
    return contextlib.nullcontext(acc.unwrap_model(trainer.model))


def generate(model, tokenizer, prompts: Sequence[Any], max_new_tokens: int, batch_size: int = 256,
             k: int = 1, temperature: float = 1.0) -> list:
    """Greedy (k=1) or sampled completions as text; returns list[str] or list[list[str]] for k>1.

    `prompts`: texts, chat message lists, or rows {"prompt", "image" | "images"} (a held-out set's rows).
    `tokenizer`: a tokenizer, or a vision-language processor: rows with images then go through the
    processor with their pixels, as TRL's training path sends them (the image block inserted into the
    first user message); without that the model would see an image token and no image."""
    import torch

    tok = getattr(tokenizer, "tokenizer", tokenizer)
    was_training = model.training
    model.eval()
    side = tok.padding_side
    tok.padding_side = "left"  # decoder-only batch generation needs left padding (and image positions)
    out: list = []
    try:
        for i in range(0, len(prompts), batch_size):
            enc = encode(tokenizer, prompts[i: i + batch_size]).to(model.device)
            kwargs = dict(max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id)
            if k > 1:
                kwargs.update(do_sample=True, temperature=temperature, num_return_sequences=k, top_k=0, top_p=1.0)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            with torch.no_grad():
                seqs = model.generate(**enc, **kwargs)
            new = seqs[:, enc["input_ids"].shape[1]:]
            decoded = tok.batch_decode(new, skip_special_tokens=True)
            if k > 1:
                decoded = [decoded[j: j + k] for j in range(0, len(decoded), k)]
            out.extend(decoded)
    finally:
        tok.padding_side = side
        if was_training:
            model.train()
    return out


def encode(processor, prompts: Sequence[Any]):
    """A left-padded batch for generation: text through the tokenizer; rows with images through the
    processor with their pixels (chat prompts with the image block inserted where TRL inserts it)."""
    tok = getattr(processor, "tokenizer", processor)
    rows = [p if isinstance(p, dict) else {"prompt": p} for p in prompts]
    images = [row_images(r) for r in rows]
    if any(images):
        if getattr(processor, "image_processor", None) is None:
            raise ValueError("held-out rows carry images but the processing class is a tokenizer: pass the "
                             "model's processor (AutoProcessor) so the images reach the model")
        texts = [processor.apply_chat_template(sent_prompt(r), tokenize=False, add_generation_prompt=True)
                 for r in rows]
        return processor(text=texts, images=[im for im in images if im], return_tensors="pt", padding=True)
    texts = [r["prompt"] if isinstance(r["prompt"], str) else
             tok.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True) for r in rows]
    return tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)


def _callback_class():
    from transformers import TrainerCallback

    class DiagCallback(TrainerCallback):
        """Trainer scalars into the store; held-out evaluation every N steps."""

        def __init__(self, capture: _Capture):
            self.capture = capture

        def on_train_begin(self, args, state, control, **kw):
            sets = self.capture.heldouts
            if sets and sets[0].at_start and state.global_step == 0:
                self.capture.evaluate(self.capture.offset)

        def on_step_end(self, args, state, control, **kw):
            if self.capture.heldouts:
                self.capture.evaluate(self.capture.offset + state.global_step, due_only=True)
            if self.capture.should_stop():
                control.should_training_stop = True  # the best checkpoint is already on disk

        def on_log(self, args, state, control, logs=None, **kw):
            rec = self.capture.recorder
            if rec is None or not logs:
                return
            mode = "eval" if any(k.startswith("eval_") for k in logs) else "train"
            # diag/* are this hook's own numbers sent into TRL's stream for W&B / TensorBoard; coming
            # back they would be a second copy, averaged over TRL's logging window: keep the first
            ours = {k: v for k, v in logs.items() if not k.startswith("diag/")}
            if ours:
                rec.log_scalars(self.capture.offset + state.global_step, ours, mode=mode)

        def on_train_end(self, args, state, control, **kw):
            if self.capture.heldouts:
                self.capture.evaluate(self.capture.offset + state.global_step)  # the final model is always measured

    return DiagCallback


def instrument(trainer, config: DiagConfig | None = None, **overrides) -> Recorder | None:
    """Attach grpo-diag to an existing GRPOTrainer; returns the Recorder (None on non-main ranks)."""
    config = config or DiagConfig(**overrides)
    if getattr(trainer, "_diag", None) is not None:
        raise RuntimeError("this trainer is already instrumented by grpo-diag")
    cap = _Capture(trainer, config)
    trainer._diag = cap
    if not isinstance(trainer, DiagGRPOTrainer):
        orig = trainer._generate_and_score_completions

        def hooked(inputs):
            inputs = cap.before_generation(inputs)
            return cap.after_generation(inputs, orig(inputs), orig)

        trainer._generate_and_score_completions = hooked
    trainer.add_callback(_callback_class()(cap))
    orig_train = trainer.train

    def train(*args, **kwargs):
        try:
            result = orig_train(*args, **kwargs)
        except BaseException as e:
            cap.close("crashed", error=f"{type(e).__name__}: {e}")
            raise
        cap.record_processes()
        cap.close("finished")
        return result

    trainer.train = train
    return cap.recorder


def _trainer_base():
    try:
        from trl import GRPOTrainer
    except ImportError as e:  # the core library works without TRL; only this adapter needs it
        raise ImportError("grpo-diag's TRL adapter needs the 'train' extra: pip install 'grpo-diag[train]'") from e
    return GRPOTrainer


class DiagGRPOTrainer(_trainer_base()):
    """GRPOTrainer with grpo-diag attached: pass `diag=DiagConfig(...)` (or nothing, for defaults)."""

    def __init__(self, *args, diag: DiagConfig | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        instrument(self, diag or DiagConfig())

    def _generate_and_score_completions(self, inputs):
        cap = getattr(self, "_diag", None)
        if cap is not None:
            inputs = cap.before_generation(inputs)
        output = super()._generate_and_score_completions(inputs)
        if cap is not None:
            output = cap.after_generation(inputs, output, super()._generate_and_score_completions)
        return output

    @property
    def diag_recorder(self) -> Recorder | None:
        return self._diag.recorder


__all__ = ["DiagGRPOTrainer", "DiagConfig", "HeldOut", "DynamicSampling", "SkipDead", "instrument", "generate", "ContractError",
           "schema"]
