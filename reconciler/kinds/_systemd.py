"""What the unit-related kinds share about systemd (a private helper, not a kind).

- the needs of systemd steps, registered with the planner (core/needs.py), which applies them
  to every action: a `systemctl --user` step (and a gated switch) needs the user's manager;
  whether it answers is a fact of the one batched `systemctl --user show`: without linger and
  without a login session it does not ("Failed to connect to bus"). Then the step waits for
  the `linger` action when the plan turns linger on (enabling linger starts the manager), and
  is blocked with the reason otherwise. A unit file, a manager step and `loginctl` need
  systemd: on a host whose init is not systemd at all they are blocked with that reason. No
  kind checks either itself;
- `systemctl --user` commands, the header of the unit files we write, the timers' upkeep, and
  how a word is written into a unit file (quoting, specifiers) and a unit file's diff shown
  (secrets hidden).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from reconciler.core.action import (
    Action,
    AttributeChange,
    GatedSwitch,
    Operation,
    PlanError,
    RemoveFile,
    RunCommand,
    WriteFile,
)
from reconciler.core.command import Command
from reconciler.core.diff import attribute_changes
from reconciler.core.host import HostContext
from reconciler.core.kind import spec_user
from reconciler.core.needs import ActionNeed, Gate, Rules, register_rules
from reconciler.core.probe import Facts, Probe
from reconciler.facts.codec import FileTextContext, keeps_file_content
from reconciler.facts.files import PathProbe, PathState
from reconciler.facts.systemd import LingerProbe, SystemdProbe, UnitStatus, UnitStatusProbe
from reconciler.frozen import frozen
from reconciler.gateway.addresses import LINGER
from reconciler.gateway.paths import names, unit_dir
from reconciler.spec.model import Spec

UNIT_MODE = 0o644
HEADER = "# Written by the reconciler from its spec; local edits are replaced on the next apply."


class UnitRenderError(PlanError):
    """A value cannot be written into a unit file (a newline in a path, say)."""


def systemctl(*args: str, timeout_s: float | None = None) -> RunCommand:
    """A mutating `systemctl --user ...` step, run in the spec user's manager (`timeout_s`:
    a deadline other than the runner's default, for a gateway's start and restart)."""
    command = Command(("systemctl", "--user", *args), scope="user", mutating=True)
    return RunCommand(command if timeout_s is None else replace(command, timeout_s=timeout_s))


@frozen
class TimerUpkeep:
    """What keeping a timer of ours enabled and active takes; the caller adds the reload, the
    order and the blocks."""

    enabled: bool
    running: bool
    operations: tuple[RunCommand, ...]
    changes: tuple[AttributeChange, ...]


def timer_upkeep(status: UnitStatus, unit: str, *, file_changed: bool) -> TimerUpkeep:
    """enable / start the timer, or restart it when its file changed under it."""
    known = status.reachable
    enabled, running = known and status.enabled, known and status.running
    operations: list[RunCommand] = []
    if not enabled:
        operations.append(systemctl("enable", unit))
    if not running:
        operations.append(systemctl("start", unit))
    elif file_changed or status.need_daemon_reload:
        # A running timer keeps its old schedule until restarted (also when an earlier run
        # wrote the file but stopped before the restart: systemd still flags the unit stale).
        operations.append(systemctl("restart", unit))
    changes = attribute_changes(
        {"enabled": True, "active": True},
        {"enabled": enabled, "active": running} if known else {},
    )
    return TimerUpkeep(enabled, running, tuple(operations), changes)


@frozen
class UserTimer:
    """A timer and its service in the user's unit directory: the reconcile timer and the backup
    timer are two of them. What both probe, why the timer's state changes, and how it is taken
    off before its files go, written once."""

    service_unit: str
    timer_unit: str
    purpose: str  # what the timer does, in the reason to enable and start it

    def service_file(self, host: HostContext) -> Path:
        return unit_dir(host) / self.service_unit

    def timer_file(self, host: HostContext) -> Path:
        return unit_dir(host) / self.timer_unit

    def probes(self, spec: Spec, host: HostContext) -> Iterable[Probe[Any]]:
        """Whether systemd runs, both files' text, both units' status, the linger flag."""
        yield SystemdProbe()
        yield PathProbe(self.service_file(host), content=True)
        yield PathProbe(self.timer_file(host), content=True)
        yield UnitStatusProbe(self.service_unit)
        yield UnitStatusProbe(self.timer_unit)
        if spec.linger:
            yield LingerProbe(spec.host.user)

    def state_reason(self, enabled: bool, running: bool) -> str:
        """Why the timer's enabled/active state changes."""
        if not enabled and not running:
            return f"{self.timer_unit} {self.purpose}: enable and start it"
        if not running:
            return f"{self.timer_unit} is not active: start it"
        if not enabled:
            return f"{self.timer_unit} must start at boot: enable it"
        return f"{self.timer_unit} changed while running: restart it to take the new schedule"

    def teardown(self, status: UnitStatus, *, timer_file: bool) -> tuple[RunCommand, ...]:
        """disable / stop the timer before its files go."""
        if not status.reachable:
            # The manager cannot say whether the timer is enabled: disable it anyway (a no-op
            # when it is not), so that removing the file never leaves a dangling
            # timers.target link.
            return (systemctl("disable", self.timer_unit),) if timer_file else ()
        operations: list[RunCommand] = []
        if status.enabled:
            operations.append(systemctl("disable", self.timer_unit))
        if status.active_state not in ("inactive", "failed", ""):
            operations.append(systemctl("stop", self.timer_unit))
        return tuple(operations)


def with_block(action: Action, *, blocked: str | None) -> Action:
    """`action`, blocked with `blocked` when there is a reason (an earlier one is kept else)."""
    return replace(action, blocked=blocked) if blocked else action


def managed_units(spec: Spec) -> tuple[str, ...]:
    """The unit names the spec's profiles own, in profile order."""
    table = names(spec)
    return tuple(table.unit(p.name) for p in spec.profiles)


def manager_probes(spec: Spec, host: HostContext) -> Iterable[Probe[Any]]:
    """What the gate needs: the owned units' status, the linger flag, whether systemd runs."""
    yield SystemdProbe()
    for unit in managed_units(spec):
        yield UnitStatusProbe(unit)
    if spec.linger:
        yield LingerProbe(spec.host.user)


def unit_status(facts: Facts, unit: str) -> UnitStatus | None:
    """The unit's status, or None when it was not probed (a file that appeared meanwhile)."""
    probe = UnitStatusProbe(unit)
    if probe not in facts.values:
        return None
    return facts.get(probe)


def linger_changes(wanted: bool | None, actual: bool) -> bool:
    """The linger kind's rule: a plan turns linger on or off when the flag differs."""
    return wanted is not None and actual != wanted


def linger_planned(spec: Spec, facts: Facts) -> bool:
    """True when this plan turns linger on (the linger kind's rule, on its probe's fact)."""
    return bool(spec.linger) and linger_changes(spec.linger, facts.get(LingerProbe(spec.host.user)))


def _manager_down(facts: Facts) -> UnitStatus | None:
    """A unit's status that says the user's manager did not answer, or None (it answered, or
    no unit was asked about): all units are read in one `systemctl --user show`, so one
    unreachable unit means all are."""
    return next(
        (v for v in facts.values.values() if isinstance(v, UnitStatus) and not v.reachable),
        None,
    )


_MANAGER: frozenset[ActionNeed] = frozenset({"as-user", "systemd", "user-manager"})
_UNIT_FILE: frozenset[ActionNeed] = frozenset({"as-user", "systemd"})
_SYSTEMD: frozenset[ActionNeed] = frozenset({"systemd"})


def _needs_of(op: Operation, host: HostContext) -> frozenset[ActionNeed]:
    """What an operation needs of systemd, from what it is: a `systemctl --user` step and a
    gated switch (it reloads and restarts units) talk to the user's manager, a file in the
    user's unit directory is read by it (no use without systemd), `loginctl` is systemd's."""
    if isinstance(op, RunCommand):
        argv = op.command.argv
        if Path(argv[0]).name == "systemctl" and "--user" in argv[1:2]:
            return _MANAGER
        return _SYSTEMD if Path(argv[0]).name == "loginctl" else frozenset()
    if isinstance(op, GatedSwitch):
        return _MANAGER
    if isinstance(op, WriteFile | RemoveFile) and op.path.parent == unit_dir(host):
        return _UNIT_FILE
    return frozenset()


def _gate(need: ActionNeed, spec: Spec, host: HostContext, facts: Facts) -> Gate:
    """systemd: blocked when it is not PID 1. The user's manager: met when it answers; else
    wait for the `linger` action when this plan turns linger on (that starts the manager),
    else blocked, saying how to start it (the planner asked "user" and "systemd" first)."""
    if need == "systemd":
        if SystemdProbe() not in facts.values:
            # A kind planned a systemd step without probing systemd: its bug, said plainly.
            raise PlanError("a systemd step was planned without probing whether systemd runs")
        return Gate(blocked=facts.get(SystemdProbe()).blocker())
    if need != "user-manager":
        return Gate()
    status = _manager_down(facts)
    if status is None:
        return Gate()
    if linger_planned(spec, facts):
        return Gate(depends_on=(LINGER,))
    user = spec_user(host).name
    return Gate(
        blocked=f"{status.detail} for {user}: set linger: true in the spec, or log in as {user}"
    )


register_rules(Rules(needs_of=_needs_of, gate=_gate))


_NEEDS_QUOTES = re.compile(r"[\s\"'\\;]")


def systemd_word(value: str, *, exec_line: bool) -> str:
    """One word for ExecStart=/Environment=, quoted and escaped by systemd's rules.

    `%` starts a specifier everywhere (so `%%`); in ExecStart `$` expands a variable (so `$$`).
    Words with whitespace, quotes, backslashes or `;` are double-quoted with C-style escapes.
    """
    if any(c in value for c in "\n\r\0"):
        raise UnitRenderError(f"{value!r} cannot be written into a unit file")
    text = value.replace("%", "%%")
    if exec_line:
        text = text.replace("$", "$$")
    if text and not _NEEDS_QUOTES.search(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_SECRET_NAME = r"[A-Z0-9_]*(?:TOKEN|PASSWORD|SECRET|KEY)[A-Z0-9_]*"
# `"NAME=value with spaces"` (the whole assignment quoted), or `NAME=value` / `NAME="value"`.
_SECRET_ASSIGNMENT = re.compile(
    rf'(?i)"({_SECRET_NAME})=[^"]*"|\b({_SECRET_NAME})=("[^"]*"|[^\s"]+)'
)


def _hide(match: re.Match[str]) -> str:
    if match.group(1) is not None:
        return f'"{match.group(1)}=(sensitive)"'
    return f"{match.group(2)}=(sensitive)"


def redact(line: str) -> str:
    """Hide values of secret-looking variables (an upstream unit holds the token in clear)."""
    return _SECRET_ASSIGNMENT.sub(_hide, line)


@keeps_file_content
def _unit_file_text(
    context: FileTextContext, path: Path, text: str
) -> tuple[str | None, str | None] | None:
    """Snapshots keep a unit file's every line, secret-looking values masked: the rule of the
    unit diff, so the diff planned against a snapshot is the one planned on the host."""
    if path.suffix in (".service", ".timer"):
        return context.text(text), None
    return None


def unit_diff(path: Path, before: str | None, after: str) -> str:
    """A unified diff of a unit file, old secrets redacted."""
    old = [redact(line) for line in (before or "").splitlines(keepends=True)]
    return "".join(
        difflib.unified_diff(
            old,
            after.splitlines(keepends=True),
            fromfile=str(path) if before is not None else "/dev/null",
            tofile=str(path),
        )
    )


def unit_file_action(
    address: str, path: Path, found: PathState, content: str, owner: str, uid: int, what: str
) -> Action | None:
    """Write the unit file `content` to `path` (0644, the user's, backup kept, shown as a diff)
    unless its text, mode and owner already match."""
    if found.kind not in ("missing", "file", "symlink"):
        raise UnitRenderError(f"{path} is {found.described}, not a unit file")
    if (
        found.kind == "file"
        and found.text == content
        and found.mode == UNIT_MODE
        and found.uid == uid
    ):
        return None
    same_text = found.kind == "file" and found.text == content
    return Action(
        address,
        "update" if found.exists else "create",
        what if not same_text else f"{path} must be mode {UNIT_MODE:04o}, owned by {owner}",
        (WriteFile(path, content, UNIT_MODE, owner),),
        diff=None if same_text else unit_diff(path, found.text, content),
    )
