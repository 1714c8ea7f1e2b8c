"""Commands as data: an argv plus who must run it and whether it changes the host."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from reconciler.core.untrusted import printable, shell_line
from reconciler.frozen import frozen

Scope = Literal["system", "user"]

TIMED_OUT = "timed out"  # how a CommandResult's error starts when the deadline ended it


@frozen
class Command:
    """One subprocess, always an argv list, never a shell string.

    `scope="user"` runs it as the spec's user in their systemd session (the runner adds `runuser`
    when we are root); `needs_root` makes the runner add `sudo -n` when we are not root.
    """

    argv: tuple[str, ...]
    scope: Scope = "system"
    needs_root: bool = False
    mutating: bool = False
    timeout_s: float = 30.0
    stdin: str | None = None
    # KEY=VALUE lines the runner adds to this command's environment (a secret such as the
    # gateway token: never in argv, where `ps`, logs and results would show it). Read only
    # when it is a regular file owned by the account the command runs as.
    env_file: Path | None = None
    # Variables of our own environment this command must not inherit (restic must never take
    # a password we did not choose from the invoker's RESTIC_PASSWORD).
    unset_env: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.argv or not all(isinstance(a, str) for a in self.argv):
            raise TypeError(f"Command.argv must be a non-empty tuple of str, got {self.argv!r}")

    def display(self) -> str:
        """The argv as a copy-pasteable shell line (for humans only; never executed as such)."""
        return shell_line(self.argv)


@frozen
class CommandResult:
    """What happened when a command ran (or could not start)."""

    command: Command
    argv: tuple[str, ...]  # as actually executed, with sudo/runuser prefixes
    exit_code: int | None  # None: it never ran (not installed, timed out, refused)
    stdout: str = ""
    stderr: str = ""
    error: str | None = None  # "not installed", "timed out after 10 s", ...
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def timed_out(self) -> bool:
        """The deadline ended it: a failure, never a fact about the host."""
        return self.exit_code is None and (self.error or "").startswith(TIMED_OUT)

    @property
    def not_found(self) -> bool:
        return self.exit_code is None and self.error == "not installed"

    def summary(self) -> str:
        """One line for messages: the error, or the exit code and the last stderr line."""
        if self.error:
            return self.error
        tail = (self.stderr.strip() or self.stdout.strip()).splitlines()
        last = printable(tail[-1]) if tail else ""  # the program's words: escaped
        return f"exit {self.exit_code}" + (f": {last}" if last else "")
