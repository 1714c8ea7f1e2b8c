"""Apply: run a plan's actions in order; a failure skips its dependents, not the rest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from reconciler.core.action import Action
from reconciler.core.execution import OperationResult
from reconciler.core.plan import Plan
from reconciler.frozen import frozen
from reconciler.shell.runner import HostRunner

Outcome = Literal["applied", "failed", "blocked", "skipped"]


@frozen
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
    # A gated switch's account (versions, downtime) is the detail of its action.
    reports = [r.detail for r in done if r.report is not None]
    return ActionOutcome(action, "applied", "; ".join(reports), tuple(done))


@dataclass
class Convergence:
    """Apply passes until nothing runnable is left (or a pass fails, or the limit is hit)."""

    passes: list[ApplyResult]
    final: Plan  # the plan probed after the last pass: what still differs

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.passes)

    @property
    def converged(self) -> bool:
        return self.ok and not self.final.runnable and not self.final.errors

    def count(self, outcome: Outcome) -> int:
        if outcome in ("blocked", "skipped"):
            # Only the last pass says what stayed blocked or skipped.
            return self.passes[-1].count(outcome) if self.passes else 0
        return sum(p.count(outcome) for p in self.passes)


def converge(
    plan: Plan,
    replan: Callable[[], Plan],
    runner: HostRunner,
    progress: Progress | None = None,
    *,
    max_passes: int = 3,
    on_pass: Callable[[int, Plan], None] | None = None,
) -> Convergence:
    """Apply `plan`, re-probe, and apply again what became possible (at most `max_passes`).

    Some steps can only be planned once an earlier one has run: the gateway's unit needs the
    path that `npm install -g` creates. Rather than guessing, we re-probe and run a second pass
    for them. A pass with a failure stops the loop; its dependents were already skipped.
    """
    passes: list[ApplyResult] = []
    current = plan
    for number in range(1, max_passes + 1):
        if not current.runnable or current.errors:
            break
        if number > 1 and on_pass:
            on_pass(number, current)
        result = apply_plan(current, runner, progress)
        passes.append(result)
        current = replan()
        if not result.ok or result.count("applied") == 0:
            break
    return Convergence(passes, current)
