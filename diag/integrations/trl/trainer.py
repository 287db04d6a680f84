"""The one-line change: DiagGRPOTrainer (GRPOTrainer with the hook built in), or instrument() on a
trainer already built; the callback that records TRL's scalars, runs held-out evaluation every N steps
and stops the run when the monitor asks."""

from __future__ import annotations

from diag.integrations.trl.capture import Capture
from diag.integrations.trl.config import DiagConfig
from diag.recorder import Recorder


def _callback_class():
    from transformers import TrainerCallback

    class DiagCallback(TrainerCallback):
        """Trainer scalars into the store; held-out evaluation every N steps."""

        def __init__(self, capture: Capture):
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
    cap = Capture(trainer, config)
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
