"""Secrets stay on the host: the one place that hides them in everything we print or save.

A plan is made from facts that may hold secrets (a gateway config keeps tokens, an upstream unit
file holds the token in clear, a process's command line may carry a password). The kinds never
put a secret into an action on purpose; this is the second line: every renderer (human, JSON,
Markdown), saved plans and snapshots pass what they show through `redact_plan`/`redact_text`,
so a value marked sensitive, or that looks like `X_TOKEN=...`, shows as `(sensitive)`.
"""

from __future__ import annotations

from dataclasses import replace

from reconciler.core.action import SENSITIVE, Action, AttributeChange, Finding, WriteFile
from reconciler.core.plan import Plan
from reconciler.core.secrets import has_secret_hint, learn_secrets, mask_secrets

# The same rule the unit kind applies to the old side of a unit diff: redacting twice changes
# nothing, so a diff made from an already redacted snapshot is the diff made on the host.
from reconciler.kinds.gateway_unit import redact as redact_line


def redact_text(text: str, *, learn: bool = True) -> str:
    """Hide secrets by value (every one learnt so far, and those `text` itself names) and by
    shape (`X_TOKEN=...`, `--password X`, `Authorization: Bearer X`, `"apiKey": "..."`).

    `learn=False`: the caller already learnt from `text` (redact_plan learns from the whole
    plan first); scanning it again would double the cost of a 2,000-profile plan.
    """
    text = mask_secrets(text, learn=learn)
    if "=" in text and has_secret_hint(text):  # the unit kind's own rule, kept byte for byte
        text = "".join(redact_line(line) for line in text.splitlines(keepends=True))
    return text


def redact_optional(text: str | None, *, learn: bool = True) -> str | None:
    return None if text is None else redact_text(text, learn=learn)


def redact_change(change: AttributeChange, *, learn: bool = True) -> AttributeChange:
    """A sensitive change keeps its path only; other string values are scrubbed."""
    if change.sensitive:
        return replace(change, before=SENSITIVE, after=SENSITIVE)
    before, after = _scrub(change.before, learn), _scrub(change.after, learn)
    if before is change.before and after is change.after:
        return change
    return replace(change, before=before, after=after)


def _scrub(value: object, learn: bool) -> object:
    return redact_text(value, learn=learn) if isinstance(value, str) else value


def redact_action(action: Action, *, learn: bool = True) -> Action:
    """The action as it may be shown (commands are kept exactly: they never carry secrets)."""
    shown = replace(
        action,
        reason=redact_text(action.reason, learn=learn),
        operations=tuple(
            replace(op, content=SENSITIVE) if isinstance(op, WriteFile) and op.sensitive else op
            for op in action.operations
        ),
        changes=tuple(redact_change(c, learn=learn) for c in action.changes),
        blocked=redact_optional(action.blocked, learn=learn),
        warning=redact_optional(action.warning, learn=learn),
        diff=redact_optional(action.diff, learn=learn),
    )
    # Equal: nothing was hidden; keep the original object (cheaper for whoever compares it).
    return action if shown == action else shown


def redact_plan(plan: Plan) -> Plan:
    """The plan as every output shows it: no sensitive value, no secret-looking assignment."""
    _learn_from(plan)  # first: a value named in one place is hidden in every other place too
    return Plan(
        actions=tuple(redact_action(a, learn=False) for a in plan.actions),
        findings=tuple(
            Finding(f.address, redact_text(f.message, learn=False), f.severity)
            for f in plan.findings
        ),
        errors=tuple(redact_text(e, learn=False) for e in plan.errors),
    )


def _learn_from(plan: Plan) -> None:
    for action in plan.actions:
        for text in (action.reason, action.blocked, action.warning, action.diff):
            if text:
                learn_secrets(text)
        for change in action.changes:
            for value in (change.before, change.after):
                if isinstance(value, str):
                    learn_secrets(value)
    for text in (*(f.message for f in plan.findings), *plan.errors):
        learn_secrets(text)
