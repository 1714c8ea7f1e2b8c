from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from plan_scenarios import ROOT, host_of

from reconciler.app.plan_pass import plan_from_facts
from reconciler.core.action import Action, KindPlan, RunCommand
from reconciler.core.command import Command
from reconciler.core.host import HostContext
from reconciler.core.kind import NEEDS_USER, NO_FACTS, Kind
from reconciler.core.plan import Plan, build_plan, order_actions, propagate_blocks
from reconciler.core.probe import Facts, Probe
from reconciler.kinds import all_kinds
from reconciler.spec.loader import load_spec
from reconciler.spec.model import Spec


def act(address: str, *deps: str, blocked: str | None = None, kind: str = "create") -> Action:
    return Action(address, kind, "because", depends_on=deps, blocked=blocked)  # type: ignore[arg-type]


def test_dependencies_come_first_and_ties_keep_listing_order() -> None:
    actions = [act("c", "b"), act("a"), act("b", "a"), act("d")]
    assert [a.address for a in order_actions(actions)] == ["a", "b", "c", "d"]


def test_unknown_dependencies_are_ignored() -> None:
    assert [a.address for a in order_actions([act("x", "not-planned")])] == ["x"]


def test_cycles_and_duplicate_addresses_are_refused() -> None:
    with pytest.raises(ValueError, match="cycle"):
        order_actions([act("a", "b"), act("b", "a")])
    with pytest.raises(ValueError, match="share an address: a"):
        order_actions([act("a"), act("a")])


def test_blocks_propagate_to_dependents_only() -> None:
    ordered = propagate_blocks(order_actions([act("a", blocked="no"), act("b", "a"), act("c")]))
    assert [(a.address, a.blocked) for a in ordered] == [
        ("a", "no"),
        ("b", "waits for a (blocked)"),
        ("c", None),
    ]


@given(st.permutations(list("abcdef")), st.data())
def test_order_is_a_function_of_the_input(names: list[str], data: st.DataObject) -> None:
    # Random DAG: each node may depend on nodes earlier in `names`.
    actions = []
    for i, name in enumerate(names):
        deps = data.draw(st.lists(st.sampled_from(names[:i]), unique=True)) if i else []
        actions.append(act(name, *deps))
    first = order_actions(actions)
    assert order_actions(list(actions)) == first
    position = {a.address: i for i, a in enumerate(first)}
    for a in actions:
        assert all(position[d] < position[a.address] for d in a.depends_on)


def test_summary_counts_like_terraform() -> None:
    run = RunCommand(Command(("true",), mutating=True))
    plan = Plan(
        actions=(
            Action("a", "create", "r", (run,)),
            Action("b", "create", "r", (run,)),
            Action("c", "update", "r", (run,)),
            Action("d", "create", "r", (run,), blocked="no tailscale"),
        )
    )
    assert plan.summary() == "Plan: 2 to add, 1 to change, 0 to remove, 1 blocked."
    assert plan.has_changes
    assert Plan(actions=()).summary() == "No changes. The host matches the spec."


# --- preconditions: kinds declare what they need, the planner checks it once -----------------


class _NeedsTheUser(Kind):
    name = "test.needs-user"
    needs = NEEDS_USER

    def __init__(self) -> None:
        self.asked: list[str] = []

    def placeholders(self, spec: Spec, host: HostContext) -> Iterable[Action]:
        self.asked.append("placeholders")
        yield Action("thing", "create", "the spec wants a thing", depends_on=("other",))

    def discover(self, spec: Spec, host: HostContext) -> Iterable[Probe[Any]]:
        self.asked.append("discover")
        return ()

    def probes(
        self, spec: Spec, host: HostContext, found: Facts = NO_FACTS
    ) -> Iterable[Probe[Any]]:
        self.asked.append("probes")
        return ()

    def plan(self, spec: Spec, host: HostContext, facts: Facts) -> KindPlan:
        self.asked.append("plan")
        return KindPlan(actions=(Action("thing", "update", "it differs"),))


def _pass(kind: _NeedsTheUser, host: HostContext) -> Plan:
    spec = load_spec(Path(__file__).parents[2] / "specs" / "vm102.yaml")
    return plan_from_facts(spec, host, [kind], lambda probes: NO_FACTS, "now").plan


def test_a_missing_user_gives_the_placeholders_blocked_and_asks_the_kind_nothing_else() -> None:
    kind = _NeedsTheUser()
    plan = _pass(kind, replace(host_of(ROOT), user=None, user_name="ghost"))
    assert kind.asked == ["placeholders"]
    assert [(a.address, a.kind, a.blocked, a.depends_on) for a in plan.actions] == [
        ("thing", "create", "user 'ghost' does not exist on this host", ("other",))
    ]


def test_with_the_user_the_kind_discovers_probes_and_plans() -> None:
    kind = _NeedsTheUser()
    plan = _pass(kind, host_of(ROOT))
    assert kind.asked == ["discover", "probes", "plan"]
    assert [(a.kind, a.blocked) for a in plan.actions] == [("update", None)]


def test_kinds_that_need_the_user_plan_only_blocked_placeholders_without_it() -> None:
    """Every registered kind: without the spec's user, whatever it lists is blocked with why,
    and a kind that declares no need is unaffected by the mechanism."""
    spec = load_spec(Path(__file__).parents[2] / "specs" / "example-full.yaml")
    host = replace(host_of(ROOT), user=None)
    needing = [k for k in all_kinds() if "user" in k.needs]
    assert {k.name for k in needing} >= {"profile.state", "profile.config", "profile.unit"}
    plan = build_plan(spec, host, NO_FACTS, needing)
    assert plan.actions and not plan.errors
    assert all(a.blocked for a in plan.actions)
