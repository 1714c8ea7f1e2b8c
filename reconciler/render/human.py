"""The Terraform-like text form of a plan: `+` create, `~` update, `-` remove, `!` blocked."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from reconciler.core.action import SENSITIVE, Action, AttributeChange, RunCommand
from reconciler.core.blocked import blocked_lines, group_blocked, steps
from reconciler.core.command import Command
from reconciler.core.plan import Plan
from reconciler.render.redaction import redact_plan
from reconciler.shell.apply import ActionOutcome

SYMBOL = {"create": "+", "update": "~", "delete": "-", "verify": "="}
COLOUR = {"+": "green", "~": "yellow", "-": "red", "!": "magenta", "=": "cyan"}

DescribeCommand = Callable[[Command], str]


def symbol(action: Action) -> str:
    return "!" if action.blocked else SYMBOL[action.kind]


def value(v: Any) -> str:
    """A value as JSON (so `null` and `"user"` read unambiguously)."""
    return json.dumps(v, sort_keys=True, default=str)


def change_line(change: AttributeChange) -> str:
    if change.sensitive:
        return f"{change.path}: {SENSITIVE}"
    return f"{change.path}: {value(change.before)} -> {value(change.after)}"


def render_plan(
    plan: Plan,
    describe: DescribeCommand,
    *,
    color: bool,
    title: str = "",
    why_blocked: bool = True,
) -> str:
    """The whole plan as text, ending with the one-line summary (secrets redacted).

    With `why_blocked`, the summary is preceded by the reasons steps are blocked, each once.
    """
    plan = redact_plan(plan)
    out: list[str] = []
    style = (lambda text, sym: click.style(text, fg=COLOUR[sym])) if color else (lambda t, s: t)
    if title:
        out.append(title)
        out.append("")
    width = max((len(a.address) for a in plan.actions), default=0)
    for action in plan.actions:
        sym = symbol(action)
        head = f"{sym} {action.address.ljust(width)}  {action.reason}"
        out.append(style(head, sym))
        for change in action.changes:
            out.append(f"    {change_line(change)}")
        if action.diff:
            out.extend(f"    {line}" for line in action.diff.rstrip("\n").splitlines())
        for op in action.operations:
            text = describe(op.command) if isinstance(op, RunCommand) else op.describe()
            out.append(f"    $ {text}")
        if action.warning:
            out.append(style(f"    WARNING: {action.warning}", "!"))
        if action.blocked:
            out.append(style(f"    blocked: {action.blocked}", "!"))
    if plan.findings:
        if plan.actions:
            out.append("")
        out.append("Not changed:")
        for finding in plan.findings:
            marker = {"info": "·", "warning": "WARNING:", "danger": "DANGER:"}[finding.severity]
            line = f"  {marker} {finding.address}: {finding.message}"
            out.append(style(line, "!") if finding.severity != "info" and color else line)
    for error in plan.errors:
        out.append(style(f"error: {error}", "-"))
    if out and out[-1] != "":
        out.append("")
    if why_blocked and plan.blocked:
        out.extend([*why_blocked_lines(plan.blocked), ""])
    out.append(plan.summary())
    return "\n".join(out)


def why_blocked_lines(blocked: tuple[Action, ...]) -> list[str]:
    """`Blocked: N steps, because:` and each distinct reason with the steps it blocks."""
    return [f"Blocked: {steps(len(blocked))}, because:", *blocked_lines(group_blocked(blocked))]


def render_outcome(outcome: ActionOutcome, *, color: bool) -> str:
    """One progress line per action during apply."""
    marks = {
        "applied": ("ok", "green"),
        "failed": ("FAILED", "red"),
        "blocked": ("blocked", "magenta"),
        "skipped": ("skipped", "yellow"),
    }
    word, fg = marks[outcome.outcome]
    tag = click.style(word, fg=fg) if color else word
    line = f"{symbol(outcome.action)} {outcome.action.address}: {tag}"
    if outcome.detail:
        line += f" ({outcome.detail})"
    return line
