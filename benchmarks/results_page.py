"""MkDocs hook: the results page (docs/results.md) drawn from benchmarks/results.json, the one file the
benchmarks write with `--record`, so a figure in the docs' results table is never copied by hand."""

from __future__ import annotations

import html
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.json"
MARKER = "<!-- results -->"


def _value(v) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}"
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


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    return markdown.replace(MARKER, render(data))
