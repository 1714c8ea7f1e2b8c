"""The machine-readable plan document (format_version 1). Secrets are never in it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler.engine.action import SENSITIVE, Action, RunCommand
from reconciler.engine.command import Command
from reconciler.engine.plan import Plan
from reconciler.spec.model import Spec

FORMAT_VERSION = "1"


def plan_document(
    plan: Plan,
    spec: Spec,
    *,
    hostname: str,
    probed_at: str,
    wrap: Callable[[Command], tuple[str, ...]],
) -> dict[str, Any]:
    """The plan as JSON-ready data: one entry per action, in apply order."""
    return {
        "format_version": FORMAT_VERSION,
        "spec": {"path": str(spec.path) if spec.path else None, "sha256": spec.sha256},
        "host": {"name": spec.host.name, "hostname": hostname, "user": spec.host.user},
        "probed_at": probed_at,
        "summary": plan.summary(),
        "has_changes": plan.has_changes,
        "actions": [_action(a, wrap) for a in plan.actions],
        "findings": [
            {"address": f.address, "severity": f.severity, "message": f.message}
            for f in plan.findings
        ],
        "errors": list(plan.errors),
    }


def _action(action: Action, wrap: Callable[[Command], tuple[str, ...]]) -> dict[str, Any]:
    operations: list[dict[str, Any]] = []
    for op in action.operations:
        if isinstance(op, RunCommand):
            operations.append(
                {"type": "command", "argv": list(wrap(op.command)), "needs_root": op.needs_root}
            )
        else:
            operations.append({"type": type(op).__name__, "description": op.describe()})
    return {
        "address": action.address,
        "kind": action.kind,
        "reason": action.reason,
        "needs_root": action.needs_root,
        "blocked": action.blocked,
        "warning": action.warning,
        "depends_on": list(action.depends_on),
        "changes": [
            {
                "path": c.path,
                "before": SENSITIVE if c.sensitive else c.before,
                "after": SENSITIVE if c.sensitive else c.after,
            }
            for c in action.changes
        ],
        "diff": action.diff,
        "operations": operations,
    }
