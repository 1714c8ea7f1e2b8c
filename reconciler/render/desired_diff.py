"""`reconciler diff OLD NEW`: the change of desired state as text, JSON or a PR comment."""

from __future__ import annotations

import json
from typing import Any, Literal

import click

from reconciler.core.action import SENSITIVE, AttributeChange
from reconciler.core.diff import ABSENT
from reconciler.frozen import frozen
from reconciler.render.human import COLOUR, value
from reconciler.render.markdown import MAX_CHARACTERS, fit
from reconciler.render.redaction import redact_change

FORMAT_VERSION = "1"

ChangeOp = Literal["add", "change", "remove"]
SYMBOL: dict[ChangeOp, str] = {"add": "+", "change": "~", "remove": "-"}


@frozen
class SpecVersion:
    """One side of the comparison: the file and its sha256."""

    path: str
    sha256: str | None


@frozen
class DesiredDiff:
    """Two versions of a spec and the changes of their resolved desired state."""

    old: SpecVersion
    new: SpecVersion
    host_name: str
    home: str  # the placeholder paths are written with, e.g. `~user`
    changes: tuple[AttributeChange, ...]

    def count(self, op: ChangeOp) -> int:
        return sum(1 for c in self.changes if change_op(c) == op)

    def summary(self) -> str:
        if not self.changes:
            if self.old.sha256 == self.new.sha256:
                return "No change: the two files are identical."
            return "No change to the desired state (the files differ only in form)."
        return (
            f"Desired state: {self.count('add')} added, {self.count('change')} changed, "
            f"{self.count('remove')} removed."
        )


def change_op(change: AttributeChange) -> ChangeOp:
    if change.before == ABSENT:
        return "add"
    if change.after == ABSENT:
        return "remove"
    return "change"


def change_line(change: AttributeChange) -> str:
    """`~ profiles.ops.port: 18809 -> 18829` (added and removed values show one side)."""
    shown = redact_change(change)
    op = change_op(shown)
    if shown.sensitive:
        return f"{SYMBOL[op]} {shown.path}: {SENSITIVE}"
    if op == "add":
        return f"+ {shown.path}: {value(shown.after)}"
    if op == "remove":
        return f"- {shown.path}: {value(shown.before)}"
    return f"~ {shown.path}: {value(shown.before)} -> {value(shown.after)}"


def title(diff: DesiredDiff) -> str:
    return (
        f"Desired state of {diff.host_name}: {diff.old.path} -> {diff.new.path} "
        f"(paths under {diff.home}, the user's home on the host)"
    )


def render_text(diff: DesiredDiff, *, color: bool) -> str:
    lines = [title(diff), ""]
    for change in diff.changes:
        line = change_line(change)
        lines.append(click.style(line, fg=COLOUR[line[0]]) if color else line)
    if diff.changes:
        lines.append("")
    lines.append(diff.summary())
    return "\n".join(lines)


def render_json(diff: DesiredDiff) -> str:
    doc: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "old": {"path": diff.old.path, "sha256": diff.old.sha256},
        "new": {"path": diff.new.path, "sha256": diff.new.sha256},
        "host": diff.host_name,
        "home": diff.home,
        "summary": {
            "text": diff.summary(),
            "added": diff.count("add"),
            "changed": diff.count("change"),
            "removed": diff.count("remove"),
        },
        "changes": [_change_entry(c) for c in diff.changes],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False, default=str)


def _change_entry(change: AttributeChange) -> dict[str, Any]:
    shown = redact_change(change)
    op = change_op(shown)
    return {
        "path": shown.path,
        "op": op,
        "before": None if op == "add" else shown.before,
        "after": None if op == "remove" else shown.after,
        "sensitive": shown.sensitive,
    }


def cautions(diff: DesiredDiff) -> list[str]:
    """What a reviewer must not miss in a spec change: public exposure, removed profiles."""
    exposed = [
        c
        for c in diff.changes
        if (c.path == "tailscale.funnel" and c.after == "allow")
        or (
            c.path.startswith("tailscale.serve.") and c.path.endswith(".funnel") and c.after is True
        )
    ]
    removed = sorted(
        c.path.split(".")[1]
        for c in diff.changes
        if c.path.startswith("profiles.") and c.path.endswith(".port") and change_op(c) == "remove"
    )
    lines = [f"> - `{change_line(c)}`: public on the internet (Funnel)" for c in exposed]
    lines += [f"> - profile `{name}` is removed from the spec" for name in removed]
    return ["> [!CAUTION]", "> **This change needs a careful look:**", *lines, ""] if lines else []


def render_markdown(diff: DesiredDiff, *, limit: int = MAX_CHARACTERS) -> str:
    head = [
        f"**reconciler diff for `{diff.host_name}`**: {diff.summary()}",
        "",
        f"<sub>`{diff.old.path}` -> `{diff.new.path}`; paths under `{diff.home}`, "
        "the user's home on the host</sub>",
        "",
        *cautions(diff),
    ]
    body = [change_line(c) for c in diff.changes] or ["(no change)"]
    n = len(diff.changes)
    label = f"Show the changes ({n} value{'s' if n != 1 else ''})"
    return fit(head, body, label, limit, see_all="`reconciler diff`")
