"""What every benchmark script does at the end: print its figures, optionally save them as JSON."""

from __future__ import annotations

import json
from pathlib import Path


def report(result: dict, json_path: str | None = None) -> dict:
    width = max(len(k) for k in result) + 2
    for k, v in result.items():
        print(f"{k:{width}s} {v:,.4f}" if isinstance(v, float) else f"{k:{width}s} {v}")
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2, default=str))
    return result
