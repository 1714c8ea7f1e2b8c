"""Every resource kind, in the order their actions are listed when nothing else orders them."""

from __future__ import annotations

from reconciler.engine.kind import ResourceKind
from reconciler.kinds.linger import LingerKind
from reconciler.kinds.operator import OperatorKind
from reconciler.kinds.runtime import RuntimeKind
from reconciler.kinds.serve import ServeKind


def all_kinds() -> tuple[ResourceKind, ...]:
    """The kinds a plan consults, in listing order (dependencies may reorder actions)."""
    return (RuntimeKind(), LingerKind(), OperatorKind(), ServeKind())
