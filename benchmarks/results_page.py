"""MkDocs hook: the results page (docs/results.md) drawn from benchmarks/results.json, the one file the
benchmarks write with `--record`, so a figure in the docs' results table is never copied by hand."""

from __future__ import annotations

import html
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.json"
MARKER = "<!-- results -->"
# a table of one benchmark's figures placed in a guide, drawn by the benchmark's own table function
TABLES = {"<!-- results:validity-real -->": "validity_real", "<!-- results:validity-generated -->": "validity_generated"}


def _value(v) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}"
    if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
        return f"{len(v)} rows (drawn as a table in the guide that shows them)"
    if isinstance(v, (dict, list)):
        return html.escape(json.dumps(v, default=str))[:300]
    return html.escape(str(v))


def render(data: dict) -> str:
    """Markdown: per benchmark, where, when and how it ran, and its figures as a key / value table."""
    if not data:
        return "No benchmark has recorded results yet: run one with `--record`."
    out = []
    for name, entry in data.items():
        out += [f"## {name}", "", f"Measured {entry.get('when')} on {entry.get('machine')}: "
                f"`{entry.get('command')}`", "", "| figure | value |", "|---|---|"]
        out += [f"| {html.escape(str(k))} | {_value(v)} |" for k, v in (entry.get("result") or {}).items()]
        out.append("")
    return "\n".join(out)


def _measured(entry: dict) -> str:
    return f"Measured {entry.get('when')} on {entry.get('machine')}: `{entry.get('command')}`."


NO_VALIDITY = "No validity results recorded yet: `python benchmarks/validity.py --record`."


def _validity(data: dict):
    """(the recorded validity entry's result, its 'Measured ...' line, benchmarks/validity.py)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import validity

    entry = data.get("validity") or {}
    return entry.get("result") or {}, _measured(entry), validity


def validity_real(data: dict) -> str:
    """The pre-registered real runs' table, by benchmarks/validity.py's own real_table."""
    result, measured, validity = _validity(data)
    if not result.get("real"):
        return NO_VALIDITY
    return measured + "\n\n" + validity.real_table(result["real"], bool(result.get("peer")))


def validity_generated(data: dict) -> str:
    """The generated runs' table, by benchmarks/validity.py's own generated_table."""
    result, measured, validity = _validity(data)
    g = {k.split("/", 1)[1]: v for k, v in result.items() if k.startswith("generated/")}
    if not g:
        return NO_VALIDITY
    return measured + "\n\n" + validity.generated_table(g, bool(result.get("peer")))


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown and not any(m in markdown for m in TABLES):
        return markdown
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    markdown = markdown.replace(MARKER, render(data))
    for marker, fn in TABLES.items():
        if marker in markdown:
            markdown = markdown.replace(marker, globals()[fn](data))
    return markdown
