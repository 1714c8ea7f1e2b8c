"""What the day-2 operations report (pure data; the runner fills it in, the use case words it).

The operations are `core.action.BackupProfile`, `RestoreSnapshot`, `RestoreInPlace` and
`VerifySnapshot`;
reconciler/shell/backup.py carries them out.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.core.command import CommandResult
from reconciler.frozen import frozen


@frozen
class BackupReport:
    """How one profile's backup went.

    `missing`: none of its paths exists, nothing ran. `problem`: why it stopped before restic
    ran (the gateway could not be stopped). `backup` and `forget`: restic's results (`forget`
    only after a complete snapshot, when the spec keeps a retention). `downtime_s`: from the
    stop to the start again, when the gateway was stopped; `start_error` why it did not start.
    """

    missing: bool = False
    problem: str = ""
    backup: CommandResult | None = None
    forget: CommandResult | None = None
    downtime_s: float | None = None
    start_error: str = ""

    @property
    def ok(self) -> bool:
        """restic backed up and forgot without an error (the use case also reads the
        summary: restic exits 0 without one only when something is badly wrong)."""
        return (
            not self.missing
            and not self.problem
            and self.backup is not None
            and self.backup.ok
            and (self.forget is None or self.forget.ok)
        )


@frozen
class RestoreReport:
    """How a restore went.

    `problem`: why it stopped before restic ran (staging: the directory cannot be made or is
    not empty; in place: the gateway cannot be stopped or a path cannot be moved aside).
    `restore`: restic's result. In place: `aside` holds where the live paths went, `fix_error`
    why the state directory could not be made 0700, `stopped` whether the gateway ran and was
    stopped, `start_error` why it did not start again, `downtime_s` the time it was down and
    `healthy` whether its port answered after the start (True when it was not stopped).
    """

    problem: str = ""
    restore: CommandResult | None = None
    aside: tuple[Path, ...] = ()
    fix_error: str = ""
    stopped: bool = False
    start_error: str = ""
    downtime_s: float | None = None
    healthy: bool = True

    @property
    def restored(self) -> bool:
        """restic restored and (in place) the state directory is right."""
        return (
            not self.problem and self.restore is not None and self.restore.ok and not self.fix_error
        )

    @property
    def ok(self) -> bool:
        """Restored, and the gateway answers when it was running before."""
        return self.restored and self.healthy


@frozen
class VerifyReport:
    """How a snapshot's verification went: `problems`, empty when every listed file came back
    as listed; else why restic restore or ls failed, or each file that is missing or has
    another size or mode."""

    problems: tuple[str, ...] = ()

    @property
    def problem(self) -> str:
        """The first problem ("" when none): the detail of the operation's result."""
        return self.problems[0] if self.problems else ""

    @property
    def ok(self) -> bool:
        """Every listed file restored, as listed."""
        return not self.problems
