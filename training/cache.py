"""Where built and rebuilt models are cached: $GRPO_DIAG_CACHE, else ~/.cache/grpo-diag."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    root = os.environ.get("GRPO_DIAG_CACHE") or Path.home() / ".cache" / "grpo-diag"
    p = Path(root)
    p.mkdir(parents=True, exist_ok=True)
    return p
