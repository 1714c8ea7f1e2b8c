"""Apply: run a plan's actions in order; a failure skips its dependents, not the rest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from reconciler.engine.action import Action
from reconciler.engine.plan import Plan
from reconciler.engine.runner import HostRunner, OperationResult

Outcome = Literal["applied", "failed", "blocked", "skipped"]


@dataclass(frozen=True)
class ActionOutcome:
    """What happened to one action during apply."""

    action: Action
    outcome: Outcome
    detail: str = ""
    operations: tuple[OperationResult, ...] = ()


@dataclass
class ApplyResult:
    outcomes: list[ActionOutcome] = field(default_factory=list)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)

    @property
    def ok(self) -> bool:
        """No action failed (blocked and skipped-because-blocked steps are reported, not errors)."""
        return self.count("failed") == 0 and not any(
            o.outcome == "skipped" and "failed" in o.detail for o in self.outcomes
        )


Progress = Callable[[ActionOutcome], None]


def apply_plan(plan: Plan, runner: HostRunner, progress: Progress | None = None) -> ApplyResult:
    """Run every runnable action in plan order; report each outcome through `progress`."""
    result = ApplyResult()
    not_done: dict[str, str] = {}  # address -> why its dependents must not run
    for action in plan.actions:
        outcome = _apply_one(action, runner, not_done)
        if outcome.outcome != "applied":
            not_done[action.address] = outcome.outcome
        result.outcomes.append(outcome)
        if progress:
            progress(outcome)
    return result


def _apply_one(action: Action, runner: HostRunner, not_done: dict[str, str]) -> ActionOutcome:
    if action.blocked is not None:
        return ActionOutcome(action, "blocked", action.blocked)
    waits = [f"{d} {not_done[d]}" for d in action.depends_on if d in not_done]
    if waits:
        return ActionOutcome(action, "skipped", "because " + ", ".join(waits))
    done: list[OperationResult] = []
    for operation in action.operations:
        op_result = runner.execute(operation)
        done.append(op_result)
        if not op_result.ok:
            return ActionOutcome(action, "failed", op_result.detail, tuple(done))
    return ActionOutcome(action, "applied", "", tuple(done))
