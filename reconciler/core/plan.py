"""The planner: pure functions from (spec, host, facts) to an ordered plan. No subprocess here."""

from __future__ import annotations

import functools
import heapq
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from graphlib import CycleError, TopologicalSorter

from reconciler.core.action import Action, Finding, Handler, KindPlan, PlanError, PlanView
from reconciler.core.host import HostContext
from reconciler.core.kind import ResourceKind, unmet_need
from reconciler.core.needs import Gates
from reconciler.core.probe import Facts, ProbeFailed
from reconciler.frozen import frozen
from reconciler.spec.model import Spec


@frozen
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
    """Ask every kind for its part, run their handlers, then order the actions and propagate
    blocks to dependents.

    A kind whose needs are not met (`unmet_need`) shows its placeholders instead, blocked.
    Handlers run after every kind has planned, in kind order, each seeing every action planned
    so far (a later kind's handler sees an earlier one's handler actions too). A kind's handler
    actions are listed right after its own actions, so the listing order stays the kinds'.
    """
    gates = Gates(spec, host, facts)
    parts = [_part(kind, spec, host, facts, gates) for kind in kinds]
    listed: list[list[Action]] = [list(part.actions) for part in parts]
    findings: list[list[Finding]] = [list(part.findings) for part in parts]
    errors: list[list[str]] = [list(part.errors) for part in parts]
    view = PlanView(a for group in listed for a in group)
    for i, (kind, part) in enumerate(zip(kinds, parts, strict=True)):
        for handler in part.handlers:
            done = _guarded(kind.name, _gated(gates, functools.partial(handler.build, view)))
            wired = [_wired(handler, action, view) for action in done.actions]
            listed[i].extend(wired)
            view.add(wired)
            findings[i].extend(done.findings)
            errors[i].extend(done.errors)
    actions = _ordered_after([a for group in listed for a in group])
    return Plan(
        actions=propagate_blocks(order_actions(actions)),
        findings=tuple(f for group in findings for f in group),
        errors=tuple(e for group in errors for e in group),
    )


def gated_plan(spec: Spec, host: HostContext, facts: Facts, actions: Sequence[Action]) -> Plan:
    """A plan of actions built outside `build_plan` (a rollback: the unit kind's switch, chosen
    by hand), given the same needs' gates as every kind's action (core/needs.py), ordered and
    with blocks propagated. A need that only an action of a whole plan would meet (the linger
    step that starts the user's manager) blocks here: this plan does not hold that action."""
    gates = Gates(spec, host, facts)
    held = {a.address for a in actions}
    gated: list[Action] = []
    for action in actions:
        done = gates.apply(action)
        absent = [d for d in done.depends_on if d not in action.depends_on and d not in held]
        if absent and done.blocked is None:
            done = replace(
                done,
                blocked=f"waits for {', '.join(absent)}, which only `reconciler apply` plans: "
                "run it first",
            )
        gated.append(done)
    return Plan(actions=propagate_blocks(order_actions(gated)))


def _part(
    kind: ResourceKind, spec: Spec, host: HostContext, facts: Facts, gates: Gates
) -> KindPlan:
    """A kind's plan, each action with its needs' gates (core/needs.py); while one of the
    kind's own needs is not met, its placeholders, blocked with why (the one place that
    decides both: kinds declare `needs`, their actions' operations imply theirs, and neither
    is checked by a kind)."""
    reason = unmet_need(kind, host)
    if reason is not None:
        placeholders = kind.placeholders(spec, host)
        return KindPlan(actions=tuple(replace(a, blocked=reason) for a in placeholders))
    return _guarded(kind.name, _gated(gates, functools.partial(kind.plan, spec, host, facts)))


def _gated(gates: Gates, build: Callable[[], KindPlan]) -> Callable[[], KindPlan]:
    """`build`, its actions given their needs' gates (inside `_guarded`: a fact a gate reads
    may have failed, as a kind's may)."""

    def gated() -> KindPlan:
        part = build()
        if not part.actions:
            return part
        return replace(part, actions=tuple(gates.apply(a) for a in part.actions))

    return gated


def _guarded(name: str, plan: Callable[[], KindPlan]) -> KindPlan:
    """The one place a kind's failure becomes a plan error (never a crash of the whole plan)."""
    try:
        return plan()
    except ProbeFailed as exc:
        return KindPlan(errors=(f"{name}: could not read the host: {exc}",))
    except PlanError as exc:
        return KindPlan(errors=(str(exc),))


def _ordered_after(actions: list[Action]) -> list[Action]:
    """Each action's `after` addresses that the plan holds, added to its `depends_on`."""
    present = {a.address for a in actions}
    out: list[Action] = []
    for action in actions:
        extra = [d for d in action.after if d in present and d not in action.depends_on]
        out.append(replace(action, depends_on=(*action.depends_on, *extra)) if extra else action)
    return out


def _wired(handler: Handler, action: Action, view: PlanView) -> Action:
    """A handler's action waits for every action that triggered it (added when missing)."""
    if action.address != handler.address:
        return action
    missing = [a.address for a in view.triggering(handler.address)]
    missing = [a for a in missing if a not in action.depends_on]
    if not missing:
        return action
    return replace(action, depends_on=(*action.depends_on, *missing))


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
