"""The planner: pure functions from (spec, host, facts) to an ordered plan. No subprocess here."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from graphlib import CycleError, TopologicalSorter

from reconciler.core.action import Action, Finding, KindPlan
from reconciler.core.host import HostContext
from reconciler.core.kind import ResourceKind
from reconciler.core.probe import Facts, ProbeFailed
from reconciler.spec.model import Spec


@dataclass(frozen=True)
class Plan:
    """An ordered list of actions plus what the plan noticed but does not change."""

    actions: tuple[Action, ...]
    findings: tuple[Finding, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def runnable(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.blocked is None)

    @property
    def blocked(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.blocked is not None)

    @property
    def has_changes(self) -> bool:
        """True when the host differs from the spec (blocked differences count too)."""
        return any(a.kind != "verify" or a.blocked for a in self.actions)

    def count(self, kind: str) -> int:
        return sum(1 for a in self.actions if a.kind == kind and a.blocked is None)

    def summary(self) -> str:
        """`Plan: 2 to add, 1 to change, 0 to remove, 1 blocked.` (Terraform's wording)."""
        if not self.actions:
            return "No changes. The host matches the spec."
        text = (
            f"Plan: {self.count('create')} to add, {self.count('update')} to change, "
            f"{self.count('delete')} to remove"
        )
        verify = self.count("verify")
        if verify:
            text += f", {verify} to verify"
        return text + f", {len(self.blocked)} blocked."


def build_plan(spec: Spec, host: HostContext, facts: Facts, kinds: Sequence[ResourceKind]) -> Plan:
    """Ask every kind for its part, then order the actions and propagate blocks to dependents."""
    parts: list[KindPlan] = []
    for kind in kinds:
        try:
            parts.append(kind.plan(spec, host, facts))
        except ProbeFailed as exc:
            parts.append(KindPlan(errors=(f"{kind.name}: could not read the host: {exc}",)))
    actions = [a for part in parts for a in part.actions]
    findings = tuple(f for part in parts for f in part.findings)
    errors = tuple(e for part in parts for e in part.errors)
    return Plan(actions=propagate_blocks(order_actions(actions)), findings=findings, errors=errors)


def order_actions(actions: Sequence[Action]) -> tuple[Action, ...]:
    """Topological order; among ready actions, the one the kinds listed first goes first.

    The tie-break makes the order a function of the input alone, so the same spec and host
    state give the same plan byte for byte.
    """
    index = {a.address: i for i, a in enumerate(actions)}
    if len(index) != len(actions):
        counts = Counter(a.address for a in actions)
        dupes = sorted(address for address, n in counts.items() if n > 1)
        raise ValueError(f"two actions share an address: {', '.join(dupes)}")
    graph = TopologicalSorter({a.address: [d for d in a.depends_on if d in index] for a in actions})
    try:
        graph.prepare()
    except CycleError as exc:
        raise ValueError(f"actions depend on each other in a cycle: {exc.args[1]}") from exc
    ready: list[tuple[int, str]] = []
    ordered: list[Action] = []
    while graph.is_active():
        for address in graph.get_ready():
            heapq.heappush(ready, (index[address], address))
        _, address = heapq.heappop(ready)
        ordered.append(actions[index[address]])
        graph.done(address)
    return tuple(ordered)


def propagate_blocks(actions: Sequence[Action]) -> tuple[Action, ...]:
    """An action waiting on a blocked one is blocked too, naming what it waits for."""
    blocked: set[str] = set()
    out: list[Action] = []
    for action in actions:  # already in dependency order
        if action.blocked is None:
            waits = [d for d in action.depends_on if d in blocked]
            if waits:
                action = replace(action, blocked=f"waits for {', '.join(waits)} (blocked)")
        if action.blocked is not None:
            blocked.add(action.address)
        out.append(action)
    return tuple(out)
