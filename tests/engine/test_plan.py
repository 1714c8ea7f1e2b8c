from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.core.action import Action, RunCommand
from reconciler.core.command import Command
from reconciler.core.plan import Plan, order_actions, propagate_blocks


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
