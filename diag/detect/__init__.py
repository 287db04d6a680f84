"""Detectors: pure functions from a run's frames and a params dataclass to findings.

Each module holds one detector. `detect_all` runs them all on a finished (or live) run; the online
monitor (diag.monitor) calls the same functions incrementally as steps and evaluations arrive.
"""

from diag.detect.base import Finding, Severity
from diag.detect.align import Aligned, align
from diag.detect.checkpoint import best_checkpoint
from diag.detect.decoupling import DecouplingParams, detect_decoupling
from diag.detect.signal_gap import SignalGapParams, detect_signal_gap
from diag.detect.run import DetectParams, check_run, detect_all

__all__ = ["Finding", "Severity", "Aligned", "align", "DecouplingParams", "detect_decoupling",
           "best_checkpoint", "SignalGapParams", "detect_signal_gap", "DetectParams", "detect_all",
           "check_run"]
