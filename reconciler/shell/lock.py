"""The apply lock: one apply at a time per user, and never a stale lock.

An exclusive `flock` on `<state dir>/lock`. The kernel drops a flock when the last descriptor
of its open file is closed, which includes the holder being killed (even by SIGKILL), so a
crash can never leave the lock held: no pid files to clean up, no staleness heuristics.

The file's content says who holds it (pid, user, command, start time, as JSON) so that a
second apply can tell the user whom it waited for. The content is only informative: it is
read when the lock is busy and may be momentarily empty while a holder changes hands.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from reconciler.core.host import Account
from reconciler.unattended import ensure_state_dir

LOCK_NAME = "lock"
POLL_S = 0.2  # how often a waiting apply retries; flock has no timeout of its own


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) the lock."""

    pid: int
    user: str
    command: str
    started: str  # ISO 8601, UTC

    def describe(self) -> str:
        return f"pid {self.pid} (user {self.user}, since {self.started}): {self.command}"

    @classmethod
    def me(cls, command: str | None = None) -> Holder:
        return cls(
            pid=os.getpid(),
            user=Account.current().name,
            # argv[0] is a console script or `.../reconciler/__main__.py`: name the program.
            command=command if command is not None else shlex.join(["reconciler", *sys.argv[1:]]),
            started=datetime.now(UTC).isoformat(timespec="seconds"),
        )

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        """The holder recorded in the lock file; None when empty or unreadable (mid-handover)."""
        try:
            data = json.loads(text)
            return cls(
                pid=int(data["pid"]),
                user=str(data["user"]),
                command=str(data["command"]),
                started=str(data["started"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


class LockBusy(Exception):
    """Another process held the lock for longer than we were willing to wait."""

    def __init__(self, path: Path, holder: Holder | None, waited_s: float) -> None:
        self.path = path
        self.holder = holder
        self.waited_s = waited_s
        who = holder.describe() if holder else "a process that has not recorded itself yet"
        waited = f" after waiting {waited_s:.0f} s" if waited_s > 0 else ""
        super().__init__(f"another reconciler apply holds {path}{waited}: {who}")


@contextlib.contextmanager
def apply_lock(
    directory: Path,
    timeout_s: float,
    *,
    command: str | None = None,
    on_wait: Callable[[Holder | None], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Holder]:
    """Hold the lock in `directory` for the `with` block; wait up to `timeout_s` (0: not at all).

    Raises LockBusy (with the holder's details) when the wait runs out. `on_wait` is called
    once, with the current holder, when we have to wait at all.
    """
    ensure_state_dir(directory)
    path = directory / LOCK_NAME
    # O_CLOEXEC: children (systemctl, npm) must not inherit the descriptor, or a daemon they
    # leave behind would keep the lock held after we exit. O_NOFOLLOW: never lock (and then
    # truncate) whatever a planted symlink points at.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        _acquire(fd, path, timeout_s, on_wait, clock, sleep)
        me = Holder.me(command)
        _record(fd, me)
        try:
            yield me
        finally:
            # Clear the record before the kernel lets the next holder in, so that nobody reads
            # our details as if we still held it.
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def read_holder(directory: Path) -> Holder | None:
    """The holder recorded in the lock file (informative only; see the module docstring)."""
    try:
        return Holder.parse((directory / LOCK_NAME).read_text(encoding="utf-8"))
    except OSError:
        return None


def _acquire(
    fd: int,
    path: Path,
    timeout_s: float,
    on_wait: Callable[[Holder | None], None] | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> None:
    started = clock()
    waiting = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
        waited = clock() - started
        if waited >= timeout_s:
            raise LockBusy(path, _read_fd(fd), waited)
        if not waiting and on_wait is not None:
            on_wait(_read_fd(fd))
        waiting = True
        sleep(min(POLL_S, max(timeout_s - waited, 0.0)))


def _record(fd: int, holder: Holder) -> None:
    data = (json.dumps(asdict(holder), sort_keys=True) + "\n").encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _read_fd(fd: int) -> Holder | None:
    try:
        return Holder.parse(os.pread(fd, 65536, 0).decode("utf-8", errors="replace"))
    except OSError:
        return None
