"""Every resource kind: each module here (except private `_*.py` helpers) holds one kind, which
registers itself with `reconciler.core.kind.register(rank)`; the rank orders the plan's listing
when nothing else orders it. Importing this package imports every kind module, once."""

from __future__ import annotations

import importlib
import pkgutil

from reconciler.core.kind import ResourceKind, registered_kinds

# Found when the package is imported (like any import, it reads the package's own directory);
# never while planning.
KIND_MODULES: tuple[str, ...] = tuple(
    sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
)
for _module in KIND_MODULES:
    importlib.import_module(f"{__name__}.{_module}")


def kind_modules() -> tuple[str, ...]:
    """The names of the kind modules in this package (private helpers excluded)."""
    return KIND_MODULES


def all_kinds() -> tuple[ResourceKind, ...]:
    """The kinds a plan consults, in listing order (dependencies may reorder actions)."""
    return tuple(cls() for cls in registered_kinds())
