"""What a user passes: DiagConfig (where the run goes, what decides a pass, the live monitor, the
remedies) and HeldOut (a held-out set, its strict verifier and how often it is measured)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from diag.integrations.dynamic_sampling import DynamicSampling
from diag.integrations.prompt_skip import SkipDead
from diag.monitor import Monitor, MonitorConfig
from diag.recorder import Recorder

Verifier = Callable[[str, dict], bool]


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
