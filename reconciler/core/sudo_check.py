"""Root-only steps when we are not root: ask sudo up front, so a refusal is a blocked step.

`sudo -n -l CMD...` answers whether CMD may run without a password, without running it. Asking
at plan time turns "apply failed: a password is required" into a plan that says, before anything
runs, which steps are blocked and the exact sudoers rule that would allow each.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from reconciler.core.action import Action, RunCommand
from reconciler.core.command import Command, CommandResult
from reconciler.core.host import HostContext
from reconciler.core.plan import Plan, propagate_blocks
from reconciler.core.probe import Facts, Probe
from reconciler.facts.codec import RecordedHost, recorded
from reconciler.shell.runner import sudo_hint


@recorded
@dataclass(frozen=True)
class SudoVerdict:
    allowed: bool
    refusal: str = ""


@recorded
@dataclass(frozen=True)
class SudoProbe(Probe[SudoVerdict]):
    """May `argv` run through `sudo -n`? (`sudo -n -l argv`; exit 0 means yes)."""

    argv: tuple[str, ...]

    def command(self, host: HostContext) -> Command:
        return Command(("sudo", "-n", "-l", *self.argv), timeout_s=10)

    def parse(self, result: CommandResult) -> SudoVerdict:
        if result.ok:
            return SudoVerdict(True)
        if result.not_found:
            return SudoVerdict(False, "sudo is not installed")
        text = (result.stderr or result.stdout).strip().splitlines()
        reason = text[-1].removeprefix("sudo: ") if text else "not allowed by sudoers"
        return SudoVerdict(False, reason)

    def answer_from(self, recorded: RecordedHost) -> SudoVerdict:
        # Never recorded as allowed: a snapshot cannot vouch for sudo.
        return SudoVerdict(False, f"{recorded.source} does not say whether sudo allows this")


def root_commands(plan: Plan, host: HostContext) -> list[Command]:
    """The root-only commands of runnable actions, when we are not root (else none)."""
    if host.is_root:
        return []
    return [
        op.command
        for action in plan.runnable
        for op in action.operations
        if isinstance(op, RunCommand) and op.command.needs_root
    ]


def sudo_probes(commands: Iterable[Command]) -> list[SudoProbe]:
    return [SudoProbe(c.argv) for c in commands]


def block_refused(plan: Plan, host: HostContext, facts: Facts) -> Plan:
    """Pure: mark every runnable action whose root-only command sudo refuses as blocked."""
    if host.is_root:
        return plan
    actions: list[Action] = []
    for action in plan.actions:
        if action.blocked is None:
            for op in action.operations:
                if isinstance(op, RunCommand) and op.command.needs_root:
                    verdict = facts.get(SudoProbe(op.command.argv))
                    if not verdict.allowed:
                        action = replace(
                            action,
                            blocked=sudo_hint(op.command, host.invoker.name, verdict.refusal),
                        )
                        break
        actions.append(action)
    return replace(plan, actions=propagate_blocks(actions))
