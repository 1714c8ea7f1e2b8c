"""What a use case takes from the world, in one object: tests build their own.

The CLI builds `AppContext.real()` (this machine, real runners, the wall clock, click's
streams); a test builds one on a fake host with `AppContext(...)` or `replace(...)` and passes
it to the use case, or to the CLI as click's `obj`. No use case reaches around it: discovering
the host, choosing a runner, reading the clock, writing output, asking for confirmation and
finding the state directory all go through here.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from reconciler.frozen import frozen

if TYPE_CHECKING:
    from reconciler.core.host import HostContext
    from reconciler.shell.runner import ReadOnlyRunner
    from reconciler.spec.model import Spec

# sysexits.h names, so every command speaks the same language (docs/commands.md lists them).
EXIT_OK = 0
EXIT_FAILED = 1  # an error: bad input, a failed step, a refused plan
EXIT_DIFFERS = 2  # the host does not match the spec (plan --detailed-exitcode, apply)
EXIT_USAGE = 64  # EX_USAGE: the command line is wrong (click's own default would be 2)
EXIT_LOCKED = 75  # EX_TEMPFAIL: another apply holds the lock; try again later


class Failed(Exception):
    """A use case stops here: print `message` (when given) as an error, exit with `code`.

    The message is already worded for a user (file, what is wrong, what to do); the CLI prints
    it on stderr as `error: MESSAGE`, never with a traceback.
    """

    def __init__(self, message: str = "", code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Output(Protocol):
    """Where a use case writes: `echo` to stdout, `error` to stderr."""

    def echo(self, text: str = "", *, nl: bool = True, color: bool = False) -> None: ...

    def error(self, text: str) -> None: ...


class ClickOutput:
    """The terminal (click resolves sys.stdout at each call, so CliRunner captures it).

    The last line of defence for secrets: every line passes `mask_secrets` (every secret learnt
    so far, and a password in a URL by its shape, e.g. a restic repository
    `rest:https://u:PW@host/`), whatever use case printed it. Learning is left to the places
    that read secrets (scanning every output again would double the cost of a large plan)."""

    def echo(self, text: str = "", *, nl: bool = True, color: bool = False) -> None:
        import click

        from reconciler.core.secrets import mask_secrets

        click.echo(mask_secrets(text, learn=False), nl=nl, color=color)

    def error(self, text: str) -> None:
        import click

        from reconciler.core.secrets import mask_secrets

        click.echo(mask_secrets(text, learn=False), err=True)


def _discover(spec: Spec) -> HostContext:
    """This machine for `spec`; an admin account (neither root nor the user) acts as the user
    when `sudo -n -u USER` lets it (one sudo starts the helper that does its file work)."""
    from dataclasses import replace

    from reconciler.core.host import HostContext

    host = HostContext.discover(spec.host.user)
    user = host.user
    if host.is_root or user is None or user.uid == 0 or host.acting_as_user:
        return host
    from reconciler.facts.invocation import running_zipapp
    from reconciler.system.as_user import sudo_reaches

    refused = sudo_reaches(user, running_zipapp())
    if refused is not None:
        return host  # the user's steps are blocked with the sudoers line (shell/runner.py)
    return replace(host, sudo_to_user=True)


def _runner(host: HostContext, mutating: bool) -> ReadOnlyRunner:
    """Only apply without --dry-run gets a mutating runner."""
    from reconciler.shell.runner import HostRunner, ReadOnlyRunner

    return HostRunner(host) if mutating else ReadOnlyRunner(host)


def _state_dir() -> Path:
    from reconciler.unattended import state_dir

    return state_dir()


def _confirm(question: str) -> bool:
    import click

    return bool(click.confirm(question, default=False))


def _stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def _stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def _read_stdin(limit: int) -> bytes:
    return sys.stdin.buffer.read(limit)


def _port_answers(port: int) -> bool:
    from reconciler.shell.runner import tcp_answers

    return tcp_answers(port)


def _now() -> datetime:
    return datetime.now(UTC)


@frozen
class AppContext:
    """The world as the use cases see it. Every field has the real default."""

    output: Output = field(default_factory=ClickOutput)
    discover_host: Callable[[Spec], HostContext] = _discover
    make_runner: Callable[[HostContext, bool], ReadOnlyRunner] = _runner  # (host, mutating)
    state_dir: Callable[[], Path] = _state_dir
    now: Callable[[], datetime] = _now  # aware, UTC
    monotonic: Callable[[], float] = time.monotonic
    confirm: Callable[[str], bool] = _confirm
    stdin_is_terminal: Callable[[], bool] = _stdin_is_terminal
    stdout_is_terminal: Callable[[], bool] = _stdout_is_terminal
    read_stdin: Callable[[int], bytes] = _read_stdin  # at most n bytes
    # None: read the spec file named on the command line. Tests may hand a Spec built in code.
    spec_loader: Callable[[Path], Spec] | None = None
    no_color_env: bool = field(default_factory=lambda: bool(os.environ.get("NO_COLOR")))
    port_answers: Callable[[int], bool] = _port_answers  # 127.0.0.1:port accepts a connection
    debug: bool = False

    def echo(self, text: str = "", *, nl: bool = True, color: bool = False) -> None:
        self.output.echo(text, nl=nl, color=color)

    def error(self, text: str) -> None:
        self.output.error(text)

    def use_color(self, no_color: bool) -> bool:
        """Colour only on a terminal, never with --no-color or NO_COLOR set."""
        return not (no_color or self.no_color_env) and self.stdout_is_terminal()

    def agrees(self, question: str) -> bool:
        """Ask on a terminal; off one (a timer, a pipe) raise Failed: only --yes applies there."""
        if not self.stdin_is_terminal():
            raise Failed("not a terminal; pass --yes to apply without confirmation")
        return self.confirm(question)

    def timestamp(self) -> str:
        """Now as the ISO 8601 UTC text records and plans carry (whole seconds)."""
        return self.now().isoformat(timespec="seconds")
