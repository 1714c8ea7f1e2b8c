"""Why steps are blocked, grouped: one line per distinct reason, naming the steps it holds.

A fresh host can block a dozen steps for one reason ("user 'user' does not exist on this
host"); the plan shows it on each step, the summaries show it once. Steps that only wait for a
blocked step (`propagate_blocks` in core/plan.py) are grouped under one reason of their own.
Pure: the plan, the human and Markdown summaries, apply's summary and the run record share it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from reconciler.core.action import Action
from reconciler.frozen import frozen

WAITS = "waits for a blocked step"
# The wording propagate_blocks gives a dependent of a blocked step.
_PROPAGATED = re.compile(r"^waits for .* \(blocked\)$", re.S)


@frozen
class BlockedGroup:
    """One reason and the addresses of the steps it blocks, in plan order."""

    reason: str
    addresses: tuple[str, ...]


def group_blocked(actions: Iterable[Action]) -> tuple[BlockedGroup, ...]:
    """The blocked actions' reasons, each once, in order of first appearance; the steps that
    only wait for another blocked step come last, as one group."""
    groups: dict[str, list[str]] = {}
    waiting: list[str] = []
    for action in actions:
        if action.blocked is None:
            continue
        if _PROPAGATED.match(action.blocked):
            waiting.append(action.address)
        else:
            groups.setdefault(action.blocked, []).append(action.address)
    out = [BlockedGroup(reason, tuple(addresses)) for reason, addresses in groups.items()]
    if waiting:
        out.append(BlockedGroup(WAITS, tuple(waiting)))
    return tuple(out)


def steps(n: int) -> str:
    return f"{n} step{'s' if n != 1 else ''}"


def blocked_lines(groups: Iterable[BlockedGroup], indent: str = "  ") -> list[str]:
    """Text lines: each reason with its step count, then the steps it blocks."""
    lines: list[str] = []
    for group in groups:
        lines.append(f"{indent}- {group.reason} ({steps(len(group.addresses))})")
        lines.append(f"{indent}  {', '.join(group.addresses)}")
    return lines


def blocked_summary(groups: Iterable[BlockedGroup]) -> str:
    """One line for a run record: `reason (a, b); reason (c)`."""
    return "; ".join(f"{g.reason} ({', '.join(g.addresses)})" for g in groups)
