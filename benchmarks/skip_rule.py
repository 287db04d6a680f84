"""The GRESO-style rule "skip a prompt whose last k visits were dead", judged after the fact on verl 0.9's own
rollout dumps (tests/fixtures/verl/v1/rollout, written by verl's code; `make verl-fixtures`), beside the dead
share of the visits it could act on: where passing does not depend on the prompt, the rule's precision is
that share and nothing more (docs/remedies.md cites both).

    python benchmarks/skip_rule.py [--k 2] [--record]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "verl" / "v1" / "rollout"


def measure(k: int, src: Path = FIXTURE) -> dict:
    import diag
    from diag import prompts
    from diag.importers import import_log

    with tempfile.TemporaryDirectory() as tmp:
        path, _ = import_log(src, name="verl-fixture", root=tmp, overwrite=True)
        hist = prompts.history(diag.open_run(path).groups)
    return {"fixture": str(src.relative_to(ROOT)), **prompts.skip_rule(hist, k)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--k", type=int, default=2)
    p.add_argument("--record", action="store_true", help="keep the figures in benchmarks/results.json")
    a = p.parse_args(argv)
    from common import report

    return report(measure(a.k), record_as="skip_rule" if a.record else None)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
