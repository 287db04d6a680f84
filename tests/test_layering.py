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


def assert_acyclic(graph: dict[str, set[str]]) -> None:
    """Depth-first search for a cycle; fails naming it."""
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


def test_training_has_no_import_cycle():
    # a package's __init__ importing its own submodules is not a cycle through other modules
    assert_acyclic({m: {d for d in deps if d.startswith("training") and not d.startswith(m + ".")}
                    for m, deps in imports().items() if m.startswith("training")})


def _runtime_imports(path: Path) -> list[tuple[ast.AST, bool]]:
    """(import node, at module level) for every import that runs: `if TYPE_CHECKING:` blocks excluded."""
    tree = ast.parse(path.read_text(), str(path))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)}
    top = {id(n) for n in tree.body}
    return [(n, id(n) in top) for n in ast.walk(tree)
            if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in skip]


def _targets(node) -> set[str]:
    if isinstance(node, ast.Import):
        return {a.name for a in node.names}
    if node.module is None or node.level:
        return set()
    return {node.module} | {f"{node.module}.{a.name}" for a in node.names}


def test_storage_knows_nothing_above_it():
    """diag/store.py imports only diag.schema from the package, at any depth of its code."""
    found = set()
    for node, _ in _runtime_imports(ROOT / "diag" / "store.py"):
        found |= {t for t in _targets(node) if t.split(".")[0] == "diag"}
    assert found <= {"diag", "diag.schema"}, sorted(found)


def test_diag_imports_at_function_level_only_with_a_reason():
    """A diag module imported inside a function hides a dependency (and often a circle); where one is
    needed (the CLI loads only the command it runs), the line says why with a `# lazy:` comment."""
    bad = []
    for path in (ROOT / "diag").rglob("*.py"):
        lines = path.read_text().splitlines()
        for node, at_top in _runtime_imports(path):
            if not at_top and any(t.split(".")[0] == "diag" for t in _targets(node)) \
                    and "# lazy:" not in lines[node.lineno - 1]:
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, bad


def test_diag_has_no_import_cycle():
    """No circle among diag's modules, function-level imports included (a package's __init__ importing
    its own submodules is not one)."""
    modules = {_module(p): p for p in (ROOT / "diag").rglob("*.py")}
    graph = {}
    for mod, path in modules.items():
        deps = set()
        for node, _ in _runtime_imports(path):
            deps |= {t for t in _targets(node) if t in modules}
        graph[mod] = {d for d in deps if d != mod and not d.startswith(mod + ".")}
    assert_acyclic(graph)


def test_long_modules_say_why():
    """A module in diag/ over about 400 lines states at its top why it is kept whole."""
    long = []
    for path in (ROOT / "diag").rglob("*.py"):
        text = path.read_text()
        doc = ast.get_docstring(ast.parse(text)) or ""
        if len(text.splitlines()) > 420 and "on purpose" not in doc:
            long.append(f"{path.relative_to(ROOT)} ({len(text.splitlines())} lines)")
    assert not long, long
