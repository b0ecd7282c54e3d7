"""The package structure holds: no import cycle, the layers import one way, no module over 500 lines.

The import graph is read from the source with `ast`, not by importing anything: every `import` and
`from … import` of tracker/ and spiders/ counts, including those inside functions (a late import
still runs, and a cycle through it still breaks when the module is imported in another order).
Imports under `if TYPE_CHECKING:` are left out: they never run, and they are how a type annotation
names a module it must not import. An edge goes to the module imported (`from a import b` to a.b
when that is a module, else to a); a module's own parent packages are not counted as imported by
it, since Python has them in sys.modules already when one of their submodules runs.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("tracker", "spiders")
MAX_LINES = 500
# Code that is not the product's: the migrations (frozen history) and the tests (incl. the frozen reference extractor).
LINE_LIMIT_EXEMPT = ("tests", "migrations")
# The storage layer knows no service and no top layer (docs/architecture.md, "Imports flow one way").
STORE_MUST_NOT_IMPORT = ("tracker.check", "tracker.impacts", "tracker.notify", "tracker.export", "tracker.service",
                         "tracker.cli", "tracker.web")
# The top layers are imported only by themselves and by `python -m tracker`; `tracker serve` is how the
# web app is started, so that one command module imports it.
TOP_LAYERS = ("tracker.cli", "tracker.web")
TOP_LAYER_LAUNCHERS = {"tracker.__main__": TOP_LAYERS, "tracker.cli.serve": ("tracker.web",)}


def module_name(path: Path) -> str:
    """tracker/check/extract.py -> tracker.check.extract; tracker/check/__init__.py -> tracker.check."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def python_files() -> dict[str, Path]:
    """Every module of the packages, by dotted name."""
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under node, at any depth, except the bodies of `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:  # (an else branch does run)
                if isinstance(other, ast.Import | ast.ImportFrom):
                    yield other
                yield from _import_nodes(other)
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        yield from _import_nodes(child)


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module a `from` import names (relative imports resolved against module)."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The modules of the packages that this module imports."""
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        else:
            base = _absolute(module, path, node)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in found if m in known and m != module}


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """Each module of the packages -> the modules of the packages it imports (built once per run)."""
    files = python_files()
    known = set(files)
    return {name: imports_of(name, path, known) for name, path in files.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path a -> … -> a) per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(graph, component) for component in components]


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first, inside the component)."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & component):
            if w == start:
                return [*paths[v], start]
            if w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    raise AssertionError(f"no cycle through {start} in its component")


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_cycle_finder_finds_a_cycle_through_a_late_import_and_ignores_type_checking(tmp_path: Path) -> None:
    """The checks below are only as good as the graph: a late import closes a cycle, a TYPE_CHECKING one does not."""
    known = {"pkg.a", "pkg.b", "pkg.c"}
    (tmp_path / "a.py").write_text("from pkg import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from pkg.c import thing\n")
    (tmp_path / "c.py").write_text("from typing import TYPE_CHECKING\nimport pkg.a\n"
                                   "if TYPE_CHECKING:\n    from pkg import b\nelse:\n    import os\n")
    graph = {m: imports_of(m, tmp_path / f"{m[-1]}.py", known) for m in sorted(known)}
    assert graph == {"pkg.a": {"pkg.b"}, "pkg.b": {"pkg.c"}, "pkg.c": {"pkg.a"}}
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]
    graph["pkg.c"] = set()
    assert find_cycles(graph) == []


def test_no_import_cycles() -> None:
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_store_imports_no_service_and_no_top_layer() -> None:
    """The migrations are left out: a data migration runs the code it was written against (0009 hashes blocks)."""
    wrong = sorted(f"{m} imports {t}" for m, targets in import_graph().items()
                   if _within(m, ("tracker.store",)) and not _within(m, ("tracker.store.migrations",))
                   for t in targets if _within(t, STORE_MUST_NOT_IMPORT))
    assert not wrong, "\n".join(wrong)


def test_nothing_imports_the_cli_or_the_web_app_but_themselves() -> None:
    wrong = sorted(f"{m} imports {t}" for m, targets in import_graph().items() for t in targets
                   for top in TOP_LAYERS if _within(t, (top,)) and not _within(m, (top,))
                   and not _within(t, TOP_LAYER_LAUNCHERS.get(m, ())))
    assert not wrong, "\n".join(wrong)


def test_the_settings_import_nothing_of_the_tracker() -> None:
    assert import_graph()["tracker.config"] == set()


def test_no_module_is_over_500_lines() -> None:
    """Modules split by responsibility (HOUSE_STYLE.md); the tests and the frozen migrations are exempt."""
    over = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if any(part in LINE_LIMIT_EXEMPT for part in path.relative_to(ROOT).parts):
                continue
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_LINES:
                over.append(f"{path.relative_to(ROOT)}: {lines} lines")
    assert not over, f"modules over {MAX_LINES} lines:\n" + "\n".join(over)
