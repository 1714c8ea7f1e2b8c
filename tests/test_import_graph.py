"""No import cycles in reconciler/: the graph of every import statement, deferred ones included.

A function-level import hides a cycle from Python's start-up but not from the design: the two
modules still depend on each other. Only `if TYPE_CHECKING:` blocks are left out (they never
run; they exist for annotations).
"""

from __future__ import annotations

import ast
from collections.abc import Container, Iterator
from pathlib import Path

import reconciler

PACKAGE = Path(reconciler.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, annotations: bool = False) -> Iterator[ast.Import | ast.ImportFrom]:
    if annotations:  # every import statement, `if TYPE_CHECKING:` blocks included
        yield from (n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom))
        return
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (n for child in node.orelse for n in _imports_in(child))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _imports(node)


def _imports_in(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    yield from _imports(node)


def imported(name: str, path: Path, known: dict[str, Path], annotations: bool = False) -> set[str]:
    """The reconciler modules `name` imports (a `from pkg import sub` names pkg.sub); with
    `annotations`, those imported only for type checking too."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in _imports(ast.parse(path.read_text(encoding="utf-8")), annotations):
        out |= resolve(node, package, known)
    out.discard(name)
    return out


def resolve(node: ast.Import | ast.ImportFrom, package: str, known: Container[str]) -> set[str]:
    """The known modules one import statement names, from inside `package`."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(anchor + ([base] if base else []))
        targets = [
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
            for alias in node.names
        ]
    return {t for t in targets if t in known}


def import_graph(annotations: bool = False) -> dict[str, set[str]]:
    known = modules()
    return {name: imported(name, path, known, annotations) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

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
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycle() -> None:
    found = cycles(import_graph())
    assert found == [], "import cycles (deferred imports count):\n" + "\n".join(
        " <-> ".join(c) for c in found
    )


def test_no_cycle_even_through_type_checking_imports() -> None:
    # An annotation is a dependency of the design too: a handler module of the runner that
    # imports the runner for its type (shell/backup.py once did) makes the two one module.
    # The types both sides speak live below them (core/execution.py).
    found = cycles(import_graph(annotations=True))
    assert found == [], "import cycles (TYPE_CHECKING imports count):\n" + "\n".join(
        " <-> ".join(c) for c in found
    )


def test_the_checker_sees_type_checking_imports_when_asked(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from reconciler.core import plan\n"
    )
    known = {"reconciler.core.plan": tmp_path}
    assert imported("reconciler.app.mod", source, known) == set()
    assert imported("reconciler.app.mod", source, known, annotations=True) == {
        "reconciler.core.plan"
    }


def test_the_checker_sees_deferred_imports_and_skips_type_checking(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "import reconciler.spec\n"
        "if TYPE_CHECKING:\n"
        "    from reconciler.core import plan\n"
        "def late():\n"
        "    from reconciler.app.context import AppContext\n"
        "    from reconciler.kinds import linger\n"
        "    from . import sibling\n"
    )
    known = {
        name: tmp_path
        for name in (
            "reconciler.spec",
            "reconciler.core.plan",
            "reconciler.app.context",
            "reconciler.kinds",
            "reconciler.kinds.linger",
            "reconciler.app.sibling",
        )
    }
    found = imported("reconciler.app.mod", source, known)
    assert found == {
        "reconciler.spec",
        "reconciler.app.context",
        "reconciler.kinds.linger",
        "reconciler.app.sibling",
    }


def test_the_checker_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_cli_and_commands_are_one_way() -> None:
    graph = import_graph()
    assert not any(
        "reconciler.cli" in graph[name] for name in graph if name.startswith("reconciler.commands")
    )
