"""Root-only steps when we are not root: ask sudo up front, so a refusal is a blocked step.

`sudo -n -l CMD...` answers whether CMD may run without a password, without running it. Asking
at plan time turns "apply failed: a password is required" into a plan that says, before anything
runs, which steps are blocked and the exact sudoers rule that would allow each.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from reconciler.core.action import Action, RunCommand
from reconciler.core.command import Command, CommandResult
from reconciler.core.host import HostContext, user_sudoers_line
from reconciler.core.plan import Plan, propagate_blocks
from reconciler.core.probe import Facts, Probe
from reconciler.facts.codec import RecordedHost, recorded
from reconciler.frozen import frozen

# Where sudo looks for commands (Debian's default `secure_path`): sudoers rules need the same
# absolute path, or visudo rejects the whole file ("expected a fully-qualified path name").
SUDO_SECURE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@recorded
@frozen
class SudoVerdict:
    allowed: bool
    refusal: str = ""


@recorded
@frozen
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


@recorded
@frozen
class SudoersPathProbe(Probe[str]):
    """The absolute path sudo runs `program` from (its secure_path), for a sudoers rule
    (in-process lookup; `/usr/bin/<program>` when it is not found there)."""

    program: str

    def read(self, host: HostContext) -> str:
        if os.sep in self.program:
            return self.program
        return shutil.which(self.program, path=SUDO_SECURE_PATH) or f"/usr/bin/{self.program}"

    def answer_from(self, recorded: RecordedHost) -> str:
        # Never looked up on the machine planning: where the snapshot found it, else sudo's
        # usual place (only the hint's text depends on it).
        if os.sep in self.program:
            return self.program
        found = recorded.host.recorded.program(self.program) if recorded.host.recorded else None
        return found or f"/usr/bin/{self.program}"


def sudoers_command(argv: tuple[str, ...], program: str) -> str:
    """`argv` as a sudoers Cmnd: `program` (absolute), `,` `:` `\\` escaped in arguments."""
    args = [re.sub(r"([,:\\])", r"\\\1", a) for a in argv[1:]]
    return " ".join([program, *args])


def sudo_hint(command: Command, invoker: str, refusal: str, program: str) -> str:
    """Why a root-only step did not run, and the exact sudoers rule that would allow it."""
    return (
        f"needs root; sudo -n refused ({refusal}). Run as root, or allow exactly this in "
        f"/etc/sudoers.d/reconciler (edit with visudo) with a sudoers rule: "
        f"{invoker} ALL=(root) NOPASSWD: {sudoers_command(command.argv, program)}"
    )


def user_sudo_hint(invoker: str, user: str, refusal: str) -> str:
    """Why a step of the user's did not run as an admin account, and the exact sudoers rule."""
    return (
        f"runs as {user}; sudo -n -u {user} refused ({refusal}). Run as {user} or as root, or "
        f"allow it in /etc/sudoers.d/reconciler (edit with visudo) with a sudoers rule: "
        f"{user_sudoers_line(invoker, user)}"
    )


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


def sudo_probes(commands: Iterable[Command]) -> list[Probe[Any]]:
    """Whether sudo allows each command, and where sudo finds its program (for the hint)."""
    probes: list[Probe[Any]] = []
    for c in commands:
        probes += [SudoProbe(c.argv), SudoersPathProbe(c.argv[0])]
    return probes


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
                            blocked=sudo_hint(
                                op.command,
                                host.invoker.name,
                                verdict.refusal,
                                facts.get(SudoersPathProbe(op.command.argv[0])),
                            ),
                        )
                        break
        actions.append(action)
    return replace(plan, actions=propagate_blocks(actions))
