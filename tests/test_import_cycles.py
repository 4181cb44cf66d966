"""The project's import graph: no cycles, and imports point down only (docs: DESIGN.md).

Every module of agent/, tools/, knowledge/, prompts/, bench/ and app.py is parsed with
`ast` (nothing is imported), and each `import`/`from ... import` that names a project module
becomes an edge. Two graphs are checked for cycles:

- the module-level graph: the imports that run when a module is imported (inside
  functions and `if TYPE_CHECKING:` blocks they do not run, so they do not count);
- the whole graph, with imports inside functions too: a function-local import that closes
  a cycle only hides it. Function-local imports stay welcome where they defer a heavy
  import (torch, llama.cpp) that points down the layers; those never close a cycle.

The layering holds for every import, deferred or not: knowledge/ imports nothing of agent/
or tools/, tools/ imports nothing of agent/, and no module imports app.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("agent", "tools", "knowledge", "prompts", "bench")
SCRIPTS = ("app.py",)


@dataclass(frozen=True)
class Edge:
    """One import of a project module by another, where it is written."""

    source: str
    target: str
    line: int
    deferred: bool  # inside a function: runs when called, not when imported

    def __str__(self) -> str:
        where = "inside a function" if self.deferred else "module level"
        return f"{self.source} -> {self.target}  ({self.source.replace('.', '/')}.py:{self.line}, {where})"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    modules = {module_name(REPO / s): REPO / s for s in SCRIPTS}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            modules[module_name(path)] = path
    return modules


def is_type_checking(test: ast.expr) -> bool:
    """`if TYPE_CHECKING:` or `if typing.TYPE_CHECKING:`."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(tree: ast.AST, deferred: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement with whether it is deferred; `if TYPE_CHECKING:` bodies skipped."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, deferred
        elif isinstance(node, ast.If) and is_type_checking(node.test):
            for other in node.orelse:  # the else branch runs
                yield from imports(ast.Module(body=[other], type_ignores=[]), deferred)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from imports(node, True)
        else:  # class bodies, try/with/if blocks run at import time
            yield from imports(node, deferred)


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module that `name` loads: the longest known prefix of it, or None."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in modules:
            return ".".join(parts)
        parts.pop()
    return None


def edges_of(source: str, path: Path, modules: dict[str, Path]) -> list[Edge]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    found: list[Edge] = []
    for node, deferred in imports(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:  # relative import: climb from this module's package
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` loads pkg.mod; `from mod import name` loads mod
            names = [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            target = resolve(name, modules)
            if target is not None and target != source:
                found.append(Edge(source, target, node.lineno, deferred))
    return found


def all_edges() -> list[Edge]:
    modules = project_modules()
    return [edge for source, path in modules.items() for edge in edges_of(source, path, modules)]


def find_cycle(edges: list[Edge]) -> list[Edge] | None:
    """One cycle of the graph as its edges in order, or None (depth-first search)."""
    out: dict[str, list[Edge]] = {}
    for edge in edges:
        out.setdefault(edge.source, []).append(edge)
    done: set[str] = set()
    stack: list[str] = []  # the current path's nodes; path[i] leads from stack[i] to stack[i + 1]
    path: list[Edge] = []

    def visit(node: str) -> list[Edge] | None:
        stack.append(node)
        for edge in out.get(node, []):
            if edge.target in stack:
                return [*path[stack.index(edge.target) :], edge]
            if edge.target not in done:
                path.append(edge)
                cycle = visit(edge.target)
                if cycle:
                    return cycle
                path.pop()
        stack.pop()
        done.add(node)
        return None

    for node in sorted(out):
        if node not in done:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def cycles(edges: list[Edge]) -> list[list[Edge]]:
    """One cycle through each group of modules that import one another, so all are reported."""
    reach: dict[str, set[str]] = {}
    for edge in edges:
        reach.setdefault(edge.source, set()).add(edge.target)
    changed = True
    while changed:  # transitive closure: the graph has a few hundred edges
        changed = False
        for targets in reach.values():
            more = set().union(*(reach.get(t, set()) for t in targets)) - targets
            if more:
                targets |= more
                changed = True
    found: list[list[Edge]] = []
    seen: set[str] = set()
    for node in sorted(reach):
        if node in seen or node not in reach[node]:
            continue
        group = {n for n in reach[node] if node in reach.get(n, set())}
        seen |= group
        cycle = find_cycle([e for e in edges if e.source in group and e.target in group])
        found.append(cycle or [])
    return found


def cycle_text(found: list[list[Edge]]) -> str:
    return "\n".join("import cycle:\n  " + "\n  ".join(str(edge) for edge in cycle) for cycle in found)


def test_the_parser_sees_the_project() -> None:
    """A guard on the test itself: it finds the modules and the imports everyone knows of."""
    modules = project_modules()
    assert {"agent.graph", "agent.nodes", "tools.jobs", "knowledge.schema", "app", "prompts"} <= set(modules)
    edges = {(e.source, e.target, e.deferred) for e in all_edges()}
    assert ("agent.graph", "agent.context", False) in edges
    assert ("tools.jobs", "knowledge.schema", False) in edges
    assert ("app", "agent.context", False) in edges
    assert ("app", "agent.chat", False) in edges  # a package's __init__ is a module too
    assert ("agent.chat.adapter", "agent.chat.views", False) in edges


def test_imports_skips_type_checking_and_marks_function_local_ones() -> None:
    tree = ast.parse(
        "import a\n"
        "if TYPE_CHECKING:\n    import b\nelse:\n    import c\n"
        "if typing.TYPE_CHECKING:\n    import d\n"
        "try:\n    import e\nexcept ImportError:\n    pass\n"
        "class K:\n    import f\n    def m(self):\n        import g\n"
        "def h():\n    from i import j\n"
    )
    found = {alias.name if isinstance(n, ast.Import) else n.module: deferred
             for n, deferred in imports(tree) for alias in n.names}
    assert found == {"a": False, "c": False, "e": False, "f": False, "g": True, "i": True}


def test_find_cycle_reports_a_cycle_and_only_a_cycle() -> None:
    a_b = Edge("a", "b", 1, False)
    b_c = Edge("b", "c", 2, True)
    c_a = Edge("c", "a", 3, False)
    assert find_cycle([a_b, b_c]) is None
    assert find_cycle([a_b, b_c, c_a]) == [a_b, b_c, c_a]
    # a path into a cycle is not part of it
    z_a = Edge("0", "a", 4, False)
    assert find_cycle([z_a, a_b, b_c, c_a]) == [a_b, b_c, c_a]
    # two separate cycles are both reported
    x_y, y_x = Edge("x", "y", 5, False), Edge("y", "x", 6, True)
    assert cycles([z_a, a_b, b_c, c_a, x_y, y_x]) == [[a_b, b_c, c_a], [x_y, y_x]]
    assert cycles([z_a, a_b, b_c, x_y]) == []


def test_no_import_cycle_at_module_level() -> None:
    found = cycles([e for e in all_edges() if not e.deferred])
    assert not found, cycle_text(found)


def test_no_import_cycle_hidden_by_a_function_local_import() -> None:
    found = cycles(all_edges())
    assert not found, cycle_text(found)


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [("knowledge", ("agent", "tools", "app", "bench")), ("tools", ("agent", "app", "bench")), ("agent", ("app", "bench"))],
)
def test_imports_point_down_only(layer: str, forbidden: tuple[str, ...]) -> None:
    wrong = [
        str(e)
        for e in all_edges()
        if e.source.split(".")[0] == layer and e.target.split(".")[0] in forbidden
    ]
    assert not wrong, f"{layer}/ must not import {', '.join(forbidden)}:\n  " + "\n  ".join(wrong)


# agent.chat's modules in their order (its __init__'s docstring): each imports only those before it
CHAT_ORDER = ("views", "router", "transcript", "conversations", "plots", "uploads", "knowledge_tab", "cards", "export", "runs",
              "rendering", "tuning", "adapter")


def test_chat_modules_import_only_the_ones_listed_before_them() -> None:
    modules = {name for name in project_modules() if name.startswith("agent.chat.")}
    missing = modules - {f"agent.chat.{name}" for name in CHAT_ORDER}
    assert not missing, f"add {sorted(missing)} to CHAT_ORDER (and to agent/chat/__init__.py's list)"
    rank = {f"agent.chat.{name}": i for i, name in enumerate(CHAT_ORDER)}
    wrong = [str(e) for e in all_edges()
             if e.source in rank and e.target.startswith("agent.chat") and rank.get(e.target, len(rank)) >= rank[e.source]]
    assert not wrong, "agent/chat imports point down CHAT_ORDER only:\n  " + "\n  ".join(wrong)


def test_nothing_imports_app() -> None:
    """Benchmarks are entry points, like the tests: they may drive the app as its users meet it."""
    wrong = [str(e) for e in all_edges() if e.target == "app" and not e.source.startswith("bench.")]
    assert not wrong, "app.py is the top: nothing but a benchmark imports it:\n  " + "\n  ".join(wrong)
