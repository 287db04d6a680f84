"""Run configs: TOML files -> dataclasses whose __post_init__ says what to change.

A config names the model (a Hub id, a local path, "tiny" for a random embedded model, or an SFT base
built and cached by this project), the task, and the SFT and/or GRPO settings. See
training/configs/*.toml for complete examples; every shipped config is validated by the tests.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

KINDS = ("sft", "grpo", "sft_grpo")


class ConfigError(ValueError):
    pass


@dataclass
class ModelCfg:
    # "tiny" (random embedded model), a Hub id, a local path, "smollm2-135m" (SmolLM2-135M-Instruct from the
    # `smollm` extra, offline), "base:weak" / "base:strong" (SFT checkpoints
    # shipped with the package, the same weights on every machine), or "base" = an SFT checkpoint that
    # this project builds and caches from `base_task` / `base_steps` (machine-dependent).
    path: str = "tiny"
    # What readers see (dashboard header, reports); empty = derived from `path` (a short name's Hub id).
    name: str = ""
    base_task: str = "add2"
    base_steps: int = 1000
    base_seed: int = 0
    hidden: int = 128
    layers: int = 2
    heads: int = 4

    def __post_init__(self):
        if self.path.startswith("base:"):
            from training.bases import NAMES

            if self.path.split(":", 1)[1] not in NAMES:
                raise ConfigError(f"model.path = {self.path!r}: shipped bases are "
                                  f"{', '.join('base:' + b for b in NAMES)}; use \"base\" with base_steps to build one")
        if self.path == "base" and self.base_steps < 1:
            raise ConfigError("model.base_steps must be >= 1 (SFT steps of the cached base checkpoint)")


@dataclass
class TaskCfg:
    name: str = "add2"
    n_train: int = 4000
    n_eval: int = 300
    seed: int = 0

    def __post_init__(self):
        from training.tasks import TASKS

        if self.name not in TASKS:
            raise ConfigError(f"task.name = {self.name!r} is unknown; choose one of {sorted(TASKS)}")
        if self.n_train < 1 or self.n_eval < 1:
            raise ConfigError("task.n_train and task.n_eval must be >= 1")


@dataclass
class SFTCfg:
    steps: int = 1000
    lr: float = 2e-3
    batch_size: int = 32
    warmup_ratio: float = 0.0
    eval_every: int = 100
    max_length: int = 64  # tokens of prompt + demonstration; chat word problems need about 256
    n_examples: int | None = None  # demonstrations to train on (None: task.n_train); epochs = steps * bs / n

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1 or self.max_length < 8:
            raise ConfigError("sft.steps and sft.batch_size must be >= 1, sft.max_length >= 8")
        if self.n_examples is not None and self.n_examples < 1:
            raise ConfigError("sft.n_examples must be >= 1 (or left out to use task.n_train)")
        if not 0 < self.lr < 1:
            raise ConfigError(f"sft.lr = {self.lr} is out of range; use e.g. 2e-3 for the tiny model")


@dataclass
class GRPOCfg:
    steps: int = 100
    lr: float = 1e-4
    num_generations: int = 8
    prompts_per_step: int = 16
    max_completion_length: int = 16
    temperature: float = 1.0
    beta: float = 0.0
    scale_rewards: str = "group"
    loss_type: str = "dapo"
    rewards: list[str] = field(default_factory=lambda: ["strict_correct"])
    reward_weights: list[float] | None = None
    verifier: str | None = None  # reward function that decides pass / fail per completion
    logging_steps: int = 1
    # Trackers TRL reports to besides the run store ("tensorboard", "trackio", "wandb"); the diag/*
    # numbers go with TRL's own. TensorBoard writes under runs/<name>/checkpoint/runs/ (or
    # $TENSORBOARD_LOGGING_DIR), Trackio to a local project "grpo-diag" ($TRACKIO_DIR), W&B as configured.
    report_to: list[str] = field(default_factory=list)
    use_vllm: bool = False
    vllm_mode: str = "colocate"

    def __post_init__(self):
        from training.tasks import REWARDS

        unknown = [r for r in self.rewards if r not in REWARDS]
        if unknown:
            raise ConfigError(f"grpo.rewards has unknown function(s) {unknown}; available: {sorted(REWARDS)}")
        if self.reward_weights is not None and len(self.reward_weights) != len(self.rewards):
            raise ConfigError(f"grpo.reward_weights has {len(self.reward_weights)} entries for "
                              f"{len(self.rewards)} rewards; give one weight per reward or drop the key")
        if self.verifier is not None and self.verifier not in self.rewards:
            raise ConfigError(f"grpo.verifier = {self.verifier!r} must be one of grpo.rewards {self.rewards}")
        if self.num_generations < 2:
            raise ConfigError("grpo.num_generations must be >= 2: GRPO compares completions within a group")
        if self.scale_rewards not in ("group", "batch", "none"):
            raise ConfigError("grpo.scale_rewards must be 'group', 'batch' or 'none'")
        if self.steps < 1 or self.prompts_per_step < 1:
            raise ConfigError("grpo.steps and grpo.prompts_per_step must be >= 1")
        known = {"tensorboard", "trackio", "wandb", "mlflow", "comet_ml", "clearml", "dvclive", "swanlab"}
        if isinstance(self.report_to, str):
            self.report_to = [self.report_to]
        bad = set(self.report_to) - known
        if bad:
            raise ConfigError(f"grpo.report_to has unknown tracker(s) {sorted(bad)}; choose from {sorted(known)}")


@dataclass
class HeldOutCfg:
    every: int = 10
    k: int = 1
    temperature: float = 1.0
    max_new_tokens: int = 16
    # more held-out sets, one per task named here, each evaluated beside the training task's own set
    # ("heldout"): a visual task's text twin ("digits-text") asks the same held-out items in the other
    # modality (transfer, or forgetting); any other task is its own held-out split
    also: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.every < 1 or self.k < 1:
            raise ConfigError("heldout.every and heldout.k must be >= 1")
        from training.tasks import TASKS

        bad = [t for t in self.also if t not in TASKS]
        if bad:
            raise ConfigError(f"heldout.also has unknown task(s) {bad}; choose from {sorted(TASKS)}")
        if "heldout" in self.also or len(set(self.also)) != len(self.also):
            raise ConfigError("heldout.also names each extra set once (the training task's set is 'heldout')")


@dataclass
class MonitorCfg:
    enabled: bool = True
    console: bool = True
    # Notification targets as apprise URLs (slack://, discord://, workflows:// for Teams, ntfy://, mailtos://,
    # json://);
    # "$NAME" reads a URL from environment variable NAME so tokens stay out of the config file.
    notify: list[str] = field(default_factory=list)
    webhook: str | None = None  # older key: an http(s) URL that receives JSON; kept as json:// / jsons://
    stop_on: list[str] = field(default_factory=list)  # e.g. ["decoupling"]
    keep_best: bool = False  # save the model at each new best held-out accuracy
    # practical margin of the decoupling verdict, Cohen's h (0.05: 2.5 points at 50% accuracy, 1.5 at 10% or 90%)
    margin_h: float = 0.05

    def __post_init__(self):
        if not 0 < self.margin_h < 1:
            raise ConfigError(f"monitor.margin_h = {self.margin_h}: Cohen's h between 0 and 1 (0.05: 2.5 points at 50%)")
        allowed = {"decoupling", "reward_stall", "signal_gap"}
        bad = set(self.stop_on) - allowed
        if bad:
            raise ConfigError(f"monitor.stop_on has unknown kind(s) {sorted(bad)}; choose from {sorted(allowed)}")
        if isinstance(self.notify, str):
            self.notify = [self.notify]
        if self.webhook is not None:
            if not self.webhook.startswith(("http://", "https://")):
                raise ConfigError("monitor.webhook must start with http:// or https://; for other services use "
                                  "monitor.notify = [\"<apprise URL>\"]")
            self.notify = [*self.notify, "json" + self.webhook[len("http"):]]
            self.webhook = None
        from diag.alerts import understood

        for i, url in enumerate(self.notify):
            if not understood(url):
                raise ConfigError(f"monitor.notify[{i}] ({url.split('://')[0]}://...) is not a notification URL "
                                  "apprise understands; see https://github.com/caronc/apprise/wiki "
                                  "(a JSON webhook: json://host:port/path, or jsons:// for HTTPS)")
        if self.stop_on and not self.keep_best:
            raise ConfigError("monitor.stop_on needs monitor.keep_best = true, so stopping keeps the best checkpoint")

    def monitor_config(self):
        """The live monitor this section asks for (diag.monitor.MonitorConfig)."""
        from diag.detect import DecouplingParams, DetectParams
        from diag.monitor import MonitorConfig

        params = DetectParams(decoupling=DecouplingParams(margin_h=self.margin_h))
        return MonitorConfig(params=params, console=self.console, notify=tuple(self.notify), stop_on=tuple(self.stop_on))


@dataclass
class RemedyCfg:
    # DAPO's dynamic sampling: zero-signal groups replaced by live ones from extra generation rounds
    dynamic_sampling: bool = False
    max_rounds: int = 3  # extra generation rounds per step at most
    # GRESO's pre-rollout filter: a prompt dead (no signal) at its last `skip_after` visits is skipped with
    # probability `skip_prob` and its slot given to a prompt not known dead
    skip_dead: bool = False
    skip_after: int = 2
    skip_prob: float = 0.8
    # "sft": when the probe predicts or the monitor confirms a signal gap, warm-start with SFT on the task's
    # demonstrations ([sft] table), re-probe, and resume GRPO, all in one run; "none": GRPO as configured
    on_signal_gap: str = "none"
    # what starts the fallback: "probe" (the pre-flight probe's prediction, else the monitor during GRPO) or
    # "monitor" (only a gap the monitor confirms; the probe is still measured, for the record)
    fallback_when: str = "probe"

    def __post_init__(self):
        if self.max_rounds < 1:
            raise ConfigError("remedy.max_rounds must be >= 1 (extra generation rounds per step)")
        if self.skip_after < 1 or not 0.0 <= self.skip_prob <= 1.0:
            raise ConfigError("remedy.skip_after must be >= 1 and remedy.skip_prob in [0, 1]")
        if self.fallback_when not in ("probe", "monitor"):
            raise ConfigError(f"remedy.fallback_when = {self.fallback_when!r}: choose \"probe\" or \"monitor\"")
        if self.on_signal_gap not in ("none", "sft"):
            raise ConfigError(f"remedy.on_signal_gap = {self.on_signal_gap!r}: choose \"sft\" (SFT warm-start, then "
                              "GRPO again) or \"none\"")


@dataclass
class ProbeCfg:
    enabled: bool = False  # run the pre-flight signal probe before GRPO and store it with the run
    prompts: int = 200
    k: int = 16

    def __post_init__(self):
        if self.k < 2 or self.prompts < 1:
            raise ConfigError("probe.k must be >= 2 and probe.prompts >= 1")


@dataclass
class RunConfig:
    name: str
    kind: str = "grpo"
    seed: int = 0
    model: ModelCfg = field(default_factory=ModelCfg)
    task: TaskCfg = field(default_factory=TaskCfg)
    sft: SFTCfg = field(default_factory=SFTCfg)
    grpo: GRPOCfg = field(default_factory=GRPOCfg)
    heldout: HeldOutCfg = field(default_factory=HeldOutCfg)
    monitor: MonitorCfg = field(default_factory=MonitorCfg)
    probe: ProbeCfg = field(default_factory=ProbeCfg)
    remedy: RemedyCfg = field(default_factory=RemedyCfg)
    description: str = ""
    source: str = ""

    def __post_init__(self):
        from diag.store import check_run_name

        if self.kind not in KINDS:
            raise ConfigError(f"kind = {self.kind!r} is unknown; choose one of {KINDS}")
        if self.remedy.on_signal_gap == "sft" and self.kind != "grpo":
            raise ConfigError(f"remedy.on_signal_gap = \"sft\" needs kind = \"grpo\" (kind is {self.kind!r}): the fallback "
                              "adds its own SFT phase when GRPO gets no signal")
        try:
            check_run_name(self.name)
        except ValueError as e:
            raise ConfigError(f"name: {e}") from e

    def to_dict(self) -> dict:
        """The config as stored with a run: notification URLs only in their redacted form."""
        from diag.alerts import redact

        d = asdict(self)
        d["monitor"]["notify"] = [redact(u) for u in d["monitor"]["notify"]]
        return d


_SECTIONS = {"model": ModelCfg, "task": TaskCfg, "sft": SFTCfg, "grpo": GRPOCfg, "heldout": HeldOutCfg,
             "monitor": MonitorCfg, "probe": ProbeCfg, "remedy": RemedyCfg}


def from_dict(d: dict[str, Any], source: str = "<dict>") -> RunConfig:
    d = dict(d)
    top = {f.name for f in fields(RunConfig)}
    unknown = set(d) - top
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {sorted(unknown)}; allowed: {sorted(top)}")
    if "name" not in d:
        raise ConfigError(f"{source}: missing key 'name' (the run name, e.g. name = \"my-run\")")
    kwargs: dict[str, Any] = {}
    for key, value in d.items():
        cls = _SECTIONS.get(key)
        if cls is None:
            kwargs[key] = value
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: [{key}] must be a table")
        allowed = {f.name for f in fields(cls)}
        bad = set(value) - allowed
        if bad:
            raise ConfigError(f"{source}: unknown key(s) {sorted(bad)} in [{key}]; allowed: {sorted(allowed)}")
        try:
            kwargs[key] = cls(**value)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from e
    try:
        cfg = RunConfig(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from e
    cfg.source = source
    return cfg


def load(path: str | Path) -> RunConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: no such config file") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from e
    return from_dict(data, str(path))


CONFIG_DIR = Path(__file__).parent / "configs"


def shipped() -> list[Path]:
    return sorted(CONFIG_DIR.rglob("*.toml"))
