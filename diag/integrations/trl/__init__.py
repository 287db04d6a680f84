"""Instrument TRL's GRPOTrainer: one line in an existing script.

    trainer = DiagGRPOTrainer(model=..., reward_funcs=..., args=..., diag=DiagConfig(root="runs"))
    # or, on a trainer you already built:
    instrument(trainer, DiagConfig(root="runs", heldout=HeldOut(rows, verifier)))

Modules: config (DiagConfig, HeldOut), contract (the private TRL surface touched, and its check),
capture (the per-batch hook), heldout (held-out evaluation, generate / encode), checkpoints (the best
model kept), trainer (DiagGRPOTrainer, instrument, the callback).

Hook point (TRL 1.16, private, pinned, guarded by tests/test_trl_integration.py): after
`GRPOTrainer._generate_and_score_completions(inputs)` returns, the tails of
`self._logs["prompt" | "completion" | "rewards"[name] | "advantages"]` hold the whole generation
batch gathered from every process (n = len(inputs) * num_processes rows, each prompt G times in a
row), so the main process sees whole groups. Completion lengths and EOS come from the returned
local tensors and are gathered here (a collective: every rank runs the hook, only rank 0 writes).
"""

from diag.integrations.dynamic_sampling import DynamicSampling
from diag.integrations.prompt_skip import SkipDead
from diag.integrations.trl.capture import Capture, completion_text
from diag.integrations.trl.config import DiagConfig, HeldOut, Verifier
from diag.integrations.trl.contract import TESTED_TRL, ContractError, check_contract
from diag.integrations.trl.heldout import encode, generate
from diag.integrations.trl.trainer import DiagGRPOTrainer, instrument

__all__ = ["DiagGRPOTrainer", "DiagConfig", "HeldOut", "DynamicSampling", "SkipDead", "instrument", "generate",
           "encode", "ContractError", "TESTED_TRL", "check_contract", "completion_text", "Capture", "Verifier"]
