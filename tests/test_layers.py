"""The layers of reconciler/, as data: a package may import its own modules and those of the
layers below it, never one above (nor one beside it in the same layer).

The table is read lowest first. A top-level module (`reconciler/semver.py`) is a "package" of its
own, and so is the root `reconciler/__init__.py` (the version). Every import counts: deferred
ones, `if TYPE_CHECKING:` ones (an annotation is a dependency too), `importlib.import_module`
and `__import__` calls with a constant name, and any string constant that is the name of a
module of the package (`review/snapshot.py` names `"reconciler.kinds"` to import it). Source
text shipped to ANOTHER interpreter (the agent's `__main__` in `remote/zipapp.py`, the
bootstrap in `remote/bootstrap.py`) starts an entry point over there; it imports nothing here.

docs/design.md ("A walk through the code") says why each layer sits where it does.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_import_graph import PACKAGE, cycles, modules, resolve

# Lowest first. Keep docs/design.md and docs/development.md in step (a test below checks that
# design.md's walk names every layer).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("reconciler", "semver", "bounded", "frozen"),  # leaves: version, ranges, reads, @frozen
    ("spec",),  # YAML -> typed Spec; the product naming table
    ("core",),  # pure: commands, actions, probes, Facts, the kind contract, diff, plan
    ("system",),  # process groups and timeouts, a child that became the user
    ("gateway",),  # where each profile lives, versions, backups, addresses: pure naming
    ("facts",),  # probes and parsers, the snapshot codec, sudo verdicts
    ("kinds",),  # one module per resource kind
    ("shell",),  # the runner: the only code that executes anything
    ("unattended",),  # run records, lock, suspension, status, metrics
    ("render",),  # text, JSON, Markdown, redaction
    ("review",),  # saved plans, snapshots, the desired state of `diff`
    ("remote",),  # the SSH client side: bootstrap, zipapp, protocol
    ("app",),  # use cases on an AppContext
    ("commands",),  # click wiring
    ("cli",),  # the `reconciler` command
    ("agent",),  # the remote entry point: runs the cli on the target
    ("__main__",),  # `python -m reconciler`
)

RANK: dict[str, int] = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def package_of(module: str) -> str:
    """`reconciler.spec.model` -> `spec`; `reconciler.semver` -> `semver`; the root -> itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, TYPE_CHECKING blocks and function bodies included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node


def _string_imports(tree: ast.AST, known: set[str]) -> set[str]:
    """Modules named by a string: `import_module("x")` / `__import__("x")`, or any constant
    that is exactly a module's name (kept to be imported later)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in known:
            out.add(node.value)
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if (
                name in ("import_module", "__import__")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                out.add(first.value)
    return out


def dependencies() -> dict[str, set[str]]:
    """Every reconciler module -> the reconciler modules it imports, by statement or by name."""
    found = modules()
    known = set(found)
    graph: dict[str, set[str]] = {}
    for name, path in found.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _import_nodes(tree):
            targets |= resolve(node, package, known)
        targets |= _string_imports(tree, known)
        graph[name] = {t for t in targets if t != name}
    return graph


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {package_of(m): set() for m in graph}
    for module, targets in graph.items():
        out[package_of(module)] |= {package_of(t) for t in targets} - {package_of(module)}
    return out


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Each import of a package at the importer's rank or above, with the modules involved."""
    bad = []
    for module, targets in sorted(graph.items()):
        source = package_of(module)
        for target in sorted(targets):
            dest = package_of(target)
            if dest != source and RANK[dest] >= RANK[source]:
                bad.append(
                    f"{module} ({source}, layer {RANK[source]}) imports {target} "
                    f"({dest}, layer {RANK[dest]})"
                )
    return bad


def test_every_package_has_a_layer() -> None:
    present = {package_of(m) for m in modules()}
    assert present == set(RANK), (
        f"add to LAYERS: {sorted(present - set(RANK))}; "
        f"gone from reconciler/: {sorted(set(RANK) - present)}"
    )
    assert len(RANK) == sum(len(names) for names in LAYERS), "a package is in two layers"


def test_no_package_imports_a_layer_above_or_beside_it() -> None:
    found = violations(dependencies())
    assert found == [], "imports against the layer table (tests/test_layers.py):\n" + "\n".join(
        found
    )


def test_no_package_level_cycle() -> None:
    found = cycles(package_graph(dependencies()))
    assert found == [], f"package cycles: {found}"


def test_the_walk_in_design_md_names_every_layer() -> None:
    design = (PACKAGE.parent / "docs" / "design.md").read_text(encoding="utf-8")
    walk = design.split("## A walk through the code", 1)[1]
    missing = [
        name
        for name in RANK
        if name != "reconciler" and f"{name}/" not in walk and f"{name}.py" not in walk
    ]
    assert missing == [], f"docs/design.md's walk does not name {missing}"


# --- the checker itself ---------------------------------------------------------------------


def _graph_of(tmp_path: Path, source: str, name: str, known: set[str]) -> set[str]:
    path = tmp_path / "mod.py"
    path.write_text(source)
    tree = ast.parse(source)
    package = name.rpartition(".")[0]
    out: set[str] = set()
    for node in _import_nodes(tree):
        out |= resolve(node, package, known)
    return out | _string_imports(tree, known)


def test_the_checker_sees_every_kind_of_import(tmp_path: Path) -> None:
    known = {
        "reconciler.kinds",
        "reconciler.core.plan",
        "reconciler.app.context",
        "reconciler.review.snapshot",
        "reconciler.render.human",
        "reconciler.facts.sibling",
    }
    source = (
        "import importlib\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from reconciler.core import plan\n"
        "def late():\n"
        "    from reconciler.app.context import AppContext\n"
        "    from . import sibling\n"
        "    importlib.import_module('reconciler.review.snapshot')\n"
        "PACKAGE = 'reconciler.kinds'\n"
        "__import__('reconciler.render.human')\n"
        "TEXT = 'reconciler.kinds.nothing'\n"
    )
    assert _graph_of(tmp_path, source, "reconciler.facts.mod", known) == known


@pytest.mark.parametrize(
    ("module", "target", "bad"),
    [
        ("reconciler.spec.loader", "reconciler.bounded", False),
        ("reconciler.spec.loader", "reconciler.core.plan", True),  # above
        ("reconciler.semver", "reconciler.bounded", True),  # beside, in the same layer
        ("reconciler.kinds.serve", "reconciler.kinds._systemd", False),  # its own package
        ("reconciler.review.snapshot", "reconciler.kinds", False),
        ("reconciler.render.human", "reconciler.review.saved_plan", True),
    ],
)
def test_the_checker_judges_by_rank(module: str, target: str, bad: bool) -> None:
    assert bool(violations({module: {target}})) is bad
