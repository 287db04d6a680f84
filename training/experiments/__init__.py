"""Controlled comparisons on the embedded tasks: SFT on N examples vs GRPO on 10N prompts from the
same base, and SFT-then-GRPO, each an instrumented run comparable on the dashboard.

    python -m training.experiments [CONFIG.toml] [--out runs/experiments] [--small]
"""
