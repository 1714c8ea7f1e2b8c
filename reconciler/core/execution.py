"""What carrying out an operation gives back, and what an operation's handler may ask of the
runner that carries it out (pure types; reconciler/shell/runner.py is the one implementation).

They live here, not in the runner, so that the runner's handler modules (shell/backup.py and
the like) speak of the runner without importing it: the runner imports its handlers, never the
other way round, not even for an annotation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from reconciler.core.action import Operation
    from reconciler.core.command import Command, CommandResult
    from reconciler.core.day2 import BackupReport, RestoreReport, VerifyReport
    from reconciler.core.host import HostContext
    from reconciler.core.switch import SwitchReport


@dataclass
class OperationResult:
    """The outcome of one operation of an action."""

    operation: Operation
    ok: bool
    detail: str = ""
    command: CommandResult | None = None
    report: SwitchReport | None = None  # a gated switch's account of itself
    backup: BackupReport | RestoreReport | VerifyReport | None = None  # a day-2 operation's


class OperationRunner(Protocol):
    """What a handler of a composite operation (a backup, a restore) needs of the runner: the
    host it acts on, a command run (as the user when its scope says so) and the runner's own
    operations (its file effects, as the user when we are root)."""

    @property
    def host(self) -> HostContext: ...

    def run(self, command: Command) -> CommandResult: ...

    def execute(self, operation: Operation) -> OperationResult: ...
