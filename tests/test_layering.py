"""The import graph: diag (the library) depends on neither the dashboard nor the launchers, and the
launchers' modules import each other without a cycle (lazy imports inside functions included)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("diag", "dashboards", "training")


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """module -> the project modules it imports anywhere in its body."""
    graph: dict[str, set[str]] = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            mod, found = _module(path), set()
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    found |= {a.name for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.add(node.module)
                    found |= {f"{node.module}.{a.name}" for a in node.names}
            graph[mod] = {m for m in found if m.split(".")[0] in PACKAGES}
    known = set(graph)
    return {m: {d for d in deps if d in known and d != m} for m, deps in graph.items()}


def test_diag_imports_neither_dashboards_nor_training():
    bad = {m: sorted(d for d in deps if not d.startswith("diag")) for m, deps in imports().items()
           if m.startswith("diag")}
    assert not {m: d for m, d in bad.items() if d}, bad


def test_dashboards_do_not_import_the_launchers():
    bad = {m: sorted(d for d in deps if d.startswith("training")) for m, deps in imports().items()
           if m.startswith("dashboards")}
    assert not {m: d for m, d in bad.items() if d}, bad


def test_training_has_no_import_cycle():
    graph = {m: {d for d in deps if d.startswith("training") and not d.startswith(m + ".")}
             for m, deps in imports().items() if m.startswith("training")}
    # a package's __init__ importing its own submodules is not a cycle through other modules
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(d):] + [d]))
            if d not in state:
                visit(d)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
