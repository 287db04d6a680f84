"""The private TRL surface the adapter touches, in one place, and the check that it is still there.

The hook reads what `GRPOTrainer._generate_and_score_completions(inputs)` leaves behind (TRL 1.16,
private, pinned; tests/test_trl_integration.py asserts the installed version is a tested one and
exercises every name below on a real trainer):

- `trainer._generate_and_score_completions` (wrapped, or overridden by DiagGRPOTrainer)
- `trainer._logs["prompt" | "completion" | "rewards"[name] | "advantages"]`: deques whose tails hold the
  whole generation batch gathered from every process, each prompt G times in a row
- `trainer._metrics[mode]`: where the hook's own numbers go so W&B / TensorBoard show them under diag/
- `trainer.num_generations`, `num_generations_eval`, `reward_func_names`, `reward_weights`,
  `accelerator`, `eos_token_ids` (optional), `model_wrapped`
- `trl.models.unwrap_model_for_generation` (held-out generation under DeepSpeed / FSDP)
"""

from __future__ import annotations

TESTED_TRL = (">=1.16", "<1.17")
CONTRACT_ATTRS = ("_generate_and_score_completions", "_logs", "_metrics", "num_generations",
                  "num_generations_eval", "reward_func_names", "reward_weights", "accelerator")


class ContractError(RuntimeError):
    """TRL's internals no longer look like the ones this adapter was written against."""


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
