"""The machine-readable plan document, format_version 1 (schemas/plan.schema.json).

One entry per action, in apply order, with its address, what it does (`kind`), the owned
attributes before and after, every operation (commands with the argv exactly as it will run),
whether it needs root and why it is blocked; plus the spec file and its sha256, the host, who
probed, when, and whether the actual state came from the host or a snapshot. Secrets are never
in it: the plan goes through `redact_plan` first. Adding a key is compatible; renaming,
removing or changing the meaning of one bumps `format_version`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler import __version__
from reconciler.core.action import (
    Action,
    Argv,
    CannotRun,
    CommandLine,
    Mode,
    Operation,
    walk_fields,
)
from reconciler.core.command import Command
from reconciler.core.plan import Plan
from reconciler.render.human import symbol
from reconciler.render.plan_context import PlanContext
from reconciler.render.redaction import redact_plan
from reconciler.spec.model import Spec

FORMAT_VERSION = "1"

Wrap = Callable[[Command], tuple[str, ...]]
Refusal = Callable[[Command], str | None]

_INDEX = re.compile(r"\[[^\]]*\]")


def resource_type(address: str) -> str:
    """`profile[ops].config` -> `profile.config`; `tailscale.serve[443]` -> `tailscale.serve`."""
    return _INDEX.sub("", address)


def plan_document(
    plan: Plan,
    spec: Spec,
    *,
    hostname: str,
    probed_at: str,
    wrap: Wrap,
    refusal: Refusal | None = None,
    invoker: str = "",
) -> dict[str, Any]:
    """The plan as JSON-ready data (shorthand for `document` with a context made from `spec`)."""
    context = PlanContext(
        spec_path=str(spec.path) if spec.path is not None else None,
        spec_sha256=spec.sha256,
        host_name=spec.host.name,
        hostname=hostname,
        user=spec.host.user,
        invoker=invoker,
        probed_at=probed_at,
    )
    return document(plan, context, wrap=wrap, refusal=refusal)


def document(
    plan: Plan, context: PlanContext, *, wrap: Wrap, refusal: Refusal | None = None
) -> dict[str, Any]:
    """The plan document: JSON-ready data, secrets redacted, actions in apply order."""
    shown = redact_plan(plan)
    return {
        "format_version": FORMAT_VERSION,
        "generator": {"name": "reconciler", "version": __version__},
        "spec": {"path": context.spec_path, "sha256": context.spec_sha256},
        "host": {
            "name": context.host_name,
            "hostname": context.hostname,
            "user": context.user,
            "invoker": context.invoker,
        },
        "probed_at": context.probed_at,
        "source": source_entry(context),
        "summary": summary_entry(shown),
        "has_changes": shown.has_changes,
        "actions": [action_entry(a, wrap, refusal) for a in shown.actions],
        "findings": [
            {"address": f.address, "severity": f.severity, "message": f.message}
            for f in shown.findings
        ],
        "errors": list(shown.errors),
    }


def source_entry(context: PlanContext) -> dict[str, Any]:
    if context.snapshot is None:
        return {"type": "host"}
    return {
        "type": "snapshot",
        "path": context.snapshot.path,
        "sha256": context.snapshot.sha256,
        "recorded_at": context.snapshot.recorded_at,
    }


def summary_entry(plan: Plan) -> dict[str, Any]:
    return {
        "text": plan.summary(),
        "add": plan.count("create"),
        "change": plan.count("update"),
        "remove": plan.count("delete"),
        "verify": plan.count("verify"),
        "blocked": len(plan.blocked),
        "errors": len(plan.errors),
    }


def action_entry(action: Action, wrap: Wrap, refusal: Refusal | None = None) -> dict[str, Any]:
    """One action (already redacted) as JSON-ready data."""
    return {
        "address": action.address,
        "resource_type": resource_type(action.address),
        "kind": action.kind,
        "symbol": symbol(action),
        "reason": action.reason,
        "blocked": action.blocked,
        "warning": action.warning,
        "needs_root": action.needs_root,
        "mutating": action.mutating,
        "depends_on": list(action.depends_on),
        "changes": [
            {"path": c.path, "before": c.before, "after": c.after, "sensitive": c.sensitive}
            for c in action.changes
        ],
        "diff": action.diff,
        "operations": [operation_entry(op, wrap, refusal) for op in action.operations],
    }


def operation_entry(op: Operation, wrap: Wrap, refusal: Refusal | None = None) -> dict[str, Any]:
    """One operation: a command with its argv as it will run, or a file/port operation.

    Generated from the operation's own field list (`Operation.fields`), as the fingerprint is.
    """

    def shown(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, Mode):
            return f"{value.bits:04o}"
        if isinstance(value, Argv):
            return list(wrap(value.command))
        if isinstance(value, CommandLine):
            return shlex.join(wrap(value.command))
        if isinstance(value, CannotRun):
            return refusal(value.command) if refusal else None
        return value

    return walk_fields(op, shown, fingerprint=False)
