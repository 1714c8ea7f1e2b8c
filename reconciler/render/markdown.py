"""The plan as a pull-request comment: one-line summary, warnings, the plan folded away.

GitHub refuses a comment longer than 65,536 characters; a 2,000-profile plan is megabytes. The
comment is therefore built to fit: the summary line and the warning block always stay (the
warning lists are capped), and the folded plan is cut at a line boundary with a notice saying
how much is missing and where to see all of it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from reconciler.core.action import Action, Finding
from reconciler.core.blocked import group_blocked, steps
from reconciler.core.command import Command
from reconciler.core.plan import Plan
from reconciler.frozen import frozen
from reconciler.render.human import render_plan, symbol
from reconciler.render.plan_context import PlanContext
from reconciler.render.redaction import redact_plan

# GitHub's limit for an issue or pull-request comment body is 65,536 characters.
MAX_CHARACTERS = 65_535
# How many removals, exposures or errors the warning block names before "and N more".
LISTED = 20
# A message longer than this is cut in the warning block (the folded plan has it whole).
MESSAGE_CHARACTERS = 300

_BACKTICKS = re.compile(r"`+")


@frozen
class Warnings:
    """What a reviewer must not miss: removals, public exposure, plan errors."""

    removals: tuple[Action, ...]
    exposures: tuple[Action, ...]
    dangers: tuple[Finding, ...]
    errors: tuple[str, ...]

    @property
    def any(self) -> bool:
        return bool(self.removals or self.exposures or self.dangers or self.errors)


def warnings_of(plan: Plan) -> Warnings:
    """Removals (`-` steps, blocked ones too), steps with a warning (public exposure),
    findings of severity danger, and errors."""
    return Warnings(
        removals=tuple(a for a in plan.actions if a.kind == "delete"),
        exposures=tuple(a for a in plan.actions if a.warning and a.kind != "delete"),
        dangers=tuple(f for f in plan.findings if f.severity == "danger"),
        errors=plan.errors,
    )


def render_markdown(
    plan: Plan,
    context: PlanContext,
    describe: Callable[[Command], str],
    *,
    limit: int = MAX_CHARACTERS,
) -> str:
    """The comment: at most `limit` characters, whatever the size of the plan."""
    plan = redact_plan(plan)
    head = [summary_line(plan, context), "", source_line(context), ""]
    head += warning_block(warnings_of(plan))
    head += blocked_block(plan)
    body = render_plan(plan, describe, color=False, why_blocked=False).splitlines()
    steps = len(plan.actions)
    label = f"{steps} step{'s' if steps != 1 else ''}"
    if plan.findings:
        label += f", {len(plan.findings)} not changed"
    return fit(head, body, f"Show the plan ({label})", limit)


def summary_line(plan: Plan, context: PlanContext) -> str:
    """`**reconciler plan for `vm102`**: Plan: 1 to add, 0 to change, 0 to remove, 0 blocked.`"""
    errors = f" {len(plan.errors)} error(s): apply would refuse it." if plan.errors else ""
    return f"**reconciler plan for `{context.host_name}`**: {plan.summary()}{errors}"


def source_line(context: PlanContext) -> str:
    sha = (context.spec_sha256 or "")[:12] or "none"
    parts = [f"spec `{context.spec_path or '-'}` (sha256 `{sha}`)"]
    if context.snapshot is not None:
        parts.append(
            f"against snapshot `{context.snapshot.path}` recorded {context.snapshot.recorded_at}"
        )
    else:
        parts.append(f"probed {context.probed_at} on `{context.hostname}`")
    parts.append(f"as `{context.invoker}`")
    return "<sub>" + " · ".join(parts) + "</sub>"


def warning_block(found: Warnings) -> list[str]:
    """A GitHub alert (`> [!CAUTION]`) listing what is removed or exposed; empty when nothing."""
    if not found.any:
        return []
    what = []
    if found.removals:
        n = len(found.removals)
        what.append(f"removes {n} resource{'s' if n != 1 else ''}")
    if found.exposures or found.dangers:
        what.append("involves public exposure")
    if found.errors:
        what.append(f"has {len(found.errors)} error(s)")
    lines = ["> [!CAUTION]", f"> **This plan {' and '.join(what)}.**"]
    items = [
        f"`{symbol(a)}` `{a.address}`: {_cut(a.warning or a.reason)}"
        + (" (blocked)" if a.blocked else "")
        for a in (*found.removals, *found.exposures)
    ]
    items += [f"DANGER `{f.address}`: {_cut(f.message)}" for f in found.dangers]
    items += [f"error: {_cut(e)}" for e in found.errors]
    lines += [f"> - {item}" for item in items[:LISTED]]
    if len(items) > LISTED:
        lines.append(f"> - ... and {len(items) - LISTED} more (in the plan below)")
    return [*lines, ""]


def blocked_block(plan: Plan) -> list[str]:
    """Why steps are blocked, each reason once with the steps it holds; empty when none."""
    blocked = plan.blocked
    if not blocked:
        return []
    lines = [f"**Blocked: {steps(len(blocked))}, because:**", ""]
    groups = group_blocked(blocked)
    for group in groups[:LISTED]:
        shown = ", ".join(f"`{a}`" for a in group.addresses[:LISTED])
        more = len(group.addresses) - LISTED
        shown += f" and {more} more" if more > 0 else ""
        lines.append(f"- {_cut(group.reason)} ({steps(len(group.addresses))}): {shown}")
    if len(groups) > LISTED:
        lines.append(f"- ... and {len(groups) - LISTED} more reasons (in the plan below)")
    return [*lines, ""]


def fit(
    head: Sequence[str],
    body: Sequence[str],
    summary: str,
    limit: int,
    *,
    see_all: str = "`reconciler plan`",
) -> str:
    """head + the body folded in <details>, cut so that the whole is at most `limit` long."""
    fence = "`" * max(3, _longest_backtick_run(body) + 1)
    opening = [f"<details><summary>{summary}</summary>", "", f"{fence}diff"]
    closing = [fence, "", "</details>", ""]
    text = _join([*head, *opening, *body, *closing])
    if len(text) <= limit:
        return text
    total = len(body)
    # Room for the kept lines: everything else, plus the longest possible notices.
    notice_inside = f"... {total} more lines not shown"
    notice_outside = ["> [!NOTE]", _too_long(total, total, see_all), ""]
    fixed = len(_join([*head, *notice_outside, *opening, notice_inside, *closing]))
    budget = max(0, limit - fixed)
    kept = 0
    used = 0
    for line in body:
        if used + len(line) + 1 > budget:
            break
        used += len(line) + 1
        kept += 1
    notice_outside[1] = _too_long(kept, total, see_all)
    cut = [*body[:kept], f"... {total - kept} more lines not shown"]
    return _join([*head, *notice_outside, *opening, *cut, *closing])


def _too_long(kept: int, total: int, see_all: str) -> str:
    return (
        f"> Too long for one comment: the first {kept} of {total} lines are shown. "
        f"See all of it with {see_all} (or in the artifacts of this run)."
    )


def _join(lines: Sequence[str]) -> str:
    return "\n".join(lines)


def _escape(text: str) -> str:
    """Text from the host must not open or close HTML (a `</details>` would break the comment)."""
    return text.replace("<", "&lt;")


def _cut(text: str) -> str:
    escaped = _escape(" ".join(text.split()))
    if len(escaped) <= MESSAGE_CHARACTERS:
        return escaped
    return escaped[: MESSAGE_CHARACTERS - 3] + "..."


def _longest_backtick_run(lines: Sequence[str]) -> int:
    return max((len(run) for line in lines for run in _BACKTICKS.findall(line)), default=0)
