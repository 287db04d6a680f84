"""grpo-diag: training-dynamics diagnostics for GRPO post-training."""

from diag.recorder import Recorder
from diag.schema import SCHEMA_VERSION
from diag.store import Run, list_runs, open_run

__all__ = ["Recorder", "Run", "open_run", "list_runs", "SCHEMA_VERSION"]
__version__ = "0.1.0"
