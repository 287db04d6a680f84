"""What resolving a packaged real model by its short name costs: the one-time rebuild into the cache, the
cache entry's size on disk, and every later load (docs/real-model.md cites these figures).

The first build goes to a fresh temporary cache, so the user's own cache is neither used nor touched.

    python benchmarks/pretrained.py [--model smollm2-135m] [--loads 3] [--record]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def measure(short: str, loads: int) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.pretrained import materialize

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = materialize(short, cache=Path(tmp))
        first = time.perf_counter() - t0
        walls = []
        for _ in range(loads):  # what a later run does: find the entry, then the one from_pretrained path
            t0 = time.perf_counter()
            materialize(short, cache=Path(tmp))
            model = AutoModelForCausalLM.from_pretrained(path)
            AutoTokenizer.from_pretrained(path)
            walls.append(time.perf_counter() - t0)
        return {"model": short, "params": sum(p.numel() for p in model.parameters()), "cache_mb": _size_mb(path),
                "first_build_s": first, "load_median_s": statistics.median(walls), "load_max_s": max(walls),
                "loads": loads}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--loads", type=int, default=3)
    p.add_argument("--record", action="store_true", help="keep the figures in benchmarks/results.json")
    a = p.parse_args(argv)
    from common import report

    from training.cli import quiet_libraries

    quiet_libraries()

    return report(measure(a.model, a.loads), record_as="pretrained" if a.record else None)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
