"""One registry of kinds: a kind registers itself in its own module, and nothing else lists it.

Fails when a kind module does not register exactly one kind, when two kinds share a name or a
rank, when a registered kind lives outside `reconciler/kinds/`, when a kind module has no test
module of its own, or when a kind module imports another kind.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

from reconciler.core.kind import registered_kinds
from reconciler.kinds import all_kinds, kind_modules

KINDS_DIR = Path(__file__).resolve().parents[2] / "reconciler" / "kinds"
TESTS_DIR = Path(__file__).resolve().parent


def test_every_kind_module_registers_exactly_one_kind() -> None:
    kinds = all_kinds()
    by_module: dict[str, list[str]] = {}
    for kind in kinds:
        module = type(kind).__module__
        assert module.startswith("reconciler.kinds."), f"{type(kind).__name__} is in {module}"
        by_module.setdefault(module.rsplit(".", 1)[1], []).append(kind.name)
    assert sorted(by_module) == sorted(kind_modules())
    assert all(len(names) == 1 for names in by_module.values()), by_module


def test_names_are_unique_and_the_order_is_the_rank_order() -> None:
    names = [k.name for k in all_kinds()]
    assert len(names) == len(set(names))
    assert [c.name for c in registered_kinds()] == names  # type: ignore[attr-defined]


def test_every_kind_module_has_its_own_tests() -> None:
    untested = [m for m in kind_modules() if not (TESTS_DIR / f"test_{m}.py").exists()]
    assert untested == []


def test_no_kind_module_imports_another() -> None:
    kinds = set(kind_modules())
    for module in kinds:
        tree = ast.parse((KINDS_DIR / f"{module}.py").read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                parts = name.split(".")
                if parts[:2] == ["reconciler", "kinds"] and len(parts) > 2:
                    assert parts[2] == module or parts[2].startswith("_"), (
                        f"kinds/{module}.py imports {name}: a kind never imports another"
                    )


def test_every_kind_has_the_whole_contract() -> None:
    for kind in all_kinds():
        for method in ("discover", "probes", "plan", "desired"):
            assert callable(getattr(kind, method)), (kind.name, method)
        module = importlib.import_module(type(kind).__module__)
        assert inspect.getdoc(module), f"{module.__name__} says what the kind wants and does"
