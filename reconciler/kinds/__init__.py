"""Every resource kind: each module here (except private `_*.py` helpers) holds one kind, which
registers itself with `reconciler.core.kind.register(rank)`; the rank orders the plan's listing
when nothing else orders it."""

from __future__ import annotations

import importlib
import pkgutil

from reconciler.core.kind import ResourceKind, registered_kinds


def kind_modules() -> tuple[str, ...]:
    """The names of the kind modules in this package (private helpers excluded)."""
    return tuple(
        sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    )


def all_kinds() -> tuple[ResourceKind, ...]:
    """The kinds a plan consults, in listing order (dependencies may reorder actions)."""
    for module in kind_modules():
        importlib.import_module(f"{__name__}.{module}")
    return tuple(cls() for cls in registered_kinds())
