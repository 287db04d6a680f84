"""MkDocs hook: the results page (docs/results.md), the tables placed in guides and every figure a guide
cites as {{ results:ENTRY.KEY|FORMAT }}, drawn from benchmarks/results.json, the one file the benchmarks
write with `--record`: a measured figure in the docs is never copied by hand, and one the file lacks
stops the (strict) build."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.json"
MARKER = "<!-- results -->"
# a table of one benchmark's figures placed in a guide, drawn by the benchmark's own table function
TABLES = {"<!-- results:validity-real -->": "validity_real", "<!-- results:validity-generated -->": "validity_generated",
          "<!-- results:truth-gap-demo -->": "truth_gap_demo", "<!-- results:remedies -->": "remedies_table"}
# ... and those drawn by the `table(result)` of the benchmark of the same name (benchmarks/NAME.py)
BENCH_TABLES = {f"<!-- results:{name} -->": name for name in ("smollm2_arms", "robustness", "experiments", "watch",
                                                                 "vlm_experiments", "sweep", "probe", "judge")}
PLOTLY_JS = "plotly.min.js"  # a plot a table draws (plotly, include_plotlyjs="directory") loads it beside its page
_plotted: set[str] = set()  # the pages that drew one: plotly.js is written beside each at the end of the build


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


def _recorded(data: dict, name: str):
    """(benchmark `name`'s recorded result, its 'Measured ...' line, the module benchmarks/`name`.py whose
    own table function draws it)."""
    import importlib
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    entry = data.get(name) or {}
    return entry.get("result") or {}, _measured(entry), importlib.import_module(name)


def validity_real(data: dict) -> str:
    """The pre-registered real runs' table, by benchmarks/validity.py's own real_table."""
    result, measured, validity = _recorded(data, "validity")
    if not result.get("real"):
        return NO_VALIDITY
    return measured + "\n\n" + validity.real_table(result["real"], bool(result.get("peer")))


def validity_generated(data: dict) -> str:
    """The generated runs' table, by benchmarks/validity.py's own generated_table."""
    result, measured, validity = _recorded(data, "validity")
    g = {k.split("/", 1)[1]: v for k, v in result.items() if k.startswith("generated/")}
    if not g:
        return NO_VALIDITY
    return measured + "\n\n" + validity.generated_table(g, bool(result.get("peer")))


# one recorded figure in a guide's sentence: {{ results:ENTRY.KEY }} or {{ results:ENTRY.KEY|FORMAT }}, FORMAT
# a Python format spec (".2f", ".1%", ",d"); ENTRY.when, ENTRY.machine and ENTRY.command name the run itself
# (KEY/INNER/... reaches into a figure that is a table: validity.generated/drift/right)
FIGURE = re.compile(r"\{\{\s*results:([A-Za-z0-9_]+)\.([A-Za-z0-9_/-]+)(?:\|([^}\s]*))?\s*\}\}")


class MissingFigure(KeyError):
    """A guide cites a figure the results file does not hold: the docs build stops, naming it."""


_MISSING = object()


def _child(node, key: str):
    """node[key] for a table, the row at index `key` for a list of rows; _MISSING when there is none."""
    if isinstance(node, dict):
        return node.get(key, _MISSING)
    if isinstance(node, list) and key.lstrip("-").isdigit() and -len(node) <= int(key) < len(node):
        return node[int(key)]  # a row by its index; -1 the last
    return _MISSING


def _find(node, key: str):
    """The value at `key` in nested tables: `key` itself, or a path one level per "/", where a table's own key
    may hold "/" (validity.generated/drift/right, cells/b150-sft/end) and a part may be a row's index in a list
    of rows (truth_gap.demo/1/truth_fall, base:weak.band/0). _MISSING when there is none."""
    found = _child(node, key)
    if found is not _MISSING:
        return found
    parts = key.split("/")
    for i in range(len(parts) - 1, 0, -1):
        inner = _child(node, "/".join(parts[:i]))
        if isinstance(inner, (dict, list)):
            found = _find(inner, "/".join(parts[i:]))
            if found is not _MISSING:
                return found
    return _MISSING


def figure(data: dict, entry: str, key: str, fmt: str | None, page: str = "?") -> str:
    """The recorded value of `entry`.`key`, formatted; MissingFigure names the page, the key and the command."""
    e = data.get(entry)
    if not isinstance(e, dict):
        raise MissingFigure(f"{page}: cites results:{entry}.{key} but {RESULTS.name} has no entry {entry!r}; run "
                            f"the benchmark that writes it with --record")
    if key in ("when", "machine", "command"):
        return html.escape(str(e.get(key)))
    result = e.get("result") or {}
    v = _find(result, key)
    if v is _MISSING:
        raise MissingFigure(f"{page}: cites results:{entry}.{key} but entry {entry!r} (`{e.get('command')}`) has no "
                            f"figure {key!r}; rerun it with --record, or cite one it has: {sorted(result)[:12]}")
    if v is None:
        return "n/a"  # recorded as not measured (a series the run lacks)
    if isinstance(v, str):
        return html.escape(v)  # a figure that could not be measured says why
    return format(v, fmt) if fmt else _value(v)


# a shipped base's own measurement, from the base.json written when it was built (training/bases/NAME/):
# {{ base:NAME.KEY|FORMAT }}, KEY/INDEX into a list (base:weak.band/0); base:NAME.size_mb is its files' size
BASE = re.compile(r"\{\{\s*base:([A-Za-z0-9_-]+)\.([A-Za-z0-9_/]+)(?:\|([^}\s]*))?\s*\}\}")
BASES = Path(__file__).resolve().parents[1] / "training" / "bases"


def base_figure(name: str, key: str, fmt: str | None, page: str = "?") -> str:
    """A shipped base's recorded value; MissingFigure names the page, the base and the key."""
    path = BASES / name / "base.json"
    if not path.is_file():
        raise MissingFigure(f"{page}: cites base:{name}.{key} but {path} does not exist")
    v = _find(json.loads(path.read_text()), key)
    if v is _MISSING and key == "size_mb":  # measured on the shipped files themselves, not recorded
        v = sum(f.stat().st_size for f in path.parent.iterdir() if f.is_file()) / 1e6
    if v is _MISSING:
        raise MissingFigure(f"{page}: cites base:{name}.{key} but {path} has no {key!r}")
    return format(v, fmt) if fmt else html.escape(str(v))


def figures(markdown: str, data: dict, page: str = "?") -> str:
    """Every {{ results:... }} and {{ base:... }} of a page replaced by its recorded value."""
    markdown = BASE.sub(lambda m: base_figure(m.group(1), m.group(2), m.group(3), page), markdown)
    return FIGURE.sub(lambda m: figure(data, m.group(1), m.group(2), m.group(3), page), markdown)


def truth_gap_demo(data: dict) -> str:
    """The demo's deceptive scenario per seed, by benchmarks/truth_gap.py's own demo_table."""
    result, measured, truth_gap = _recorded(data, "truth_gap")
    if not result.get("demo"):
        return "No demo figures recorded yet: `python benchmarks/truth_gap.py --record`."
    return measured + "\n\n" + truth_gap.demo_table(result["demo"])


def remedies_table(data: dict) -> str:
    """The remedies' comparison, by benchmarks/remedies.py's own table."""
    result, measured, remedies = _recorded(data, "remedies")
    if not result.get("rows"):
        return "No remedies figures recorded yet: `python benchmarks/remedies.py --record`."
    return measured + "\n\n" + remedies.table(result)


def bench_table(data: dict, name: str) -> str:
    """Benchmark `name`'s recorded figures as its own `table` draws them, under the line saying how they ran."""
    result, measured, module = _recorded(data, name)
    if not result:
        return f"No figures recorded yet: `python benchmarks/{name}.py --record`."
    return measured + "\n\n" + module.table(result)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown and not any(m in markdown for m in (*TABLES, *BENCH_TABLES)) \
            and not FIGURE.search(markdown) and not BASE.search(markdown):
        return markdown
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    markdown = markdown.replace(MARKER, render(data))
    for marker, fn in TABLES.items():
        if marker in markdown:
            markdown = markdown.replace(marker, globals()[fn](data))
    for marker, name in BENCH_TABLES.items():
        if marker in markdown:
            markdown = markdown.replace(marker, bench_table(data, name))
    if f'src="{PLOTLY_JS}"' in markdown:
        _plotted.add(page.file.dest_path)
    return figures(markdown, data, getattr(getattr(page, "file", None), "src_path", "?"))


def on_post_build(config) -> None:
    """plotly.js beside every page that drew a plot (from the installed plotly: the site works offline)."""
    if not _plotted:
        return
    from plotly.offline import get_plotlyjs

    code = get_plotlyjs()
    for dest in _plotted:
        (Path(config["site_dir"]) / dest).parent.joinpath(PLOTLY_JS).write_text(code)
