"""What decides whether a run reproduces: library versions, threads, CPU, BLAS and seeds.

Tiny models' trajectories differ between CPUs, BLAS builds and thread counts, so every live run
records these in run.json (`grpo-diag show` prints them): two runs that disagree can be told apart
by what differed.
"""

from __future__ import annotations

import os
import platform
import sys


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def reproducibility(seeds: dict | None = None) -> dict:
    """A JSON-safe record of the machine and libraries a run was made with (torch only if imported)."""
    out: dict = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "seeds": dict(seeds or {}),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = torch.__version__
        out["torch_threads"] = torch.get_num_threads()
        out["cuda"] = torch.version.cuda if torch.cuda.is_available() else None
        out["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        try:
            cfg = torch.__config__.show()
            out["blas"] = next((ln.split("=", 1)[1].strip() for ln in cfg.splitlines() if "BLAS_INFO" in ln), None)
        except Exception:  # noqa: BLE001 - a build without the config string still runs
            out["blas"] = None
    try:
        import numpy as np

        out["numpy"] = np.__version__
    except ImportError:
        pass
    return out
