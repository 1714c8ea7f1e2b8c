"""The apply lock: one apply at a time per host, whoever runs it, and never a stale lock.

One lock file for every invoker (root, the user, the user's timer, `sudo`): `/run/lock/
reconciler.lock`. `/run/lock` is the system's lock directory (mode 1777 root, like /tmp, so the
user can create the file when root has not yet), and root takes the same file (a root apply and
the user's timer once ran at the same time, each under its own `XDG_STATE_HOME`). The file is
0600; when root created it, root hands it to the spec's user once the spec is loaded, so that
the user's timer can take it next time; other users cannot open it (nor hold it to block us).
Without a usable `/run/lock` (no such directory, or not a root-owned sticky one) the lock falls
back to `<state dir>/lock`. A caller that names its own state directory (tests) locks there.

An exclusive `flock` on the lock file. The kernel drops a flock when the last descriptor
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
import stat
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from reconciler.bounded import file_type
from reconciler.core.host import Account
from reconciler.unattended import ensure_state_dir

LOCK_NAME = "lock"
HOST_LOCK_DIR = Path("/run/lock")  # the system's lock directory: root-owned, mode 1777
HOST_LOCK_NAME = "reconciler.lock"
MAX_HOLDER_BYTES = 64 * 1024  # a holder record is one short JSON line
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


class LockUnusable(Exception):
    """The lock file cannot be used (not a regular file, not ours to open): what and what to do."""


def host_lock_path(fallback_dir: Path) -> Path:
    """The host's one lock file, or `fallback_dir/lock` when /run/lock is not usable."""
    try:
        info = os.stat(HOST_LOCK_DIR)
    except OSError:
        return fallback_dir / LOCK_NAME
    sticky_root_dir = (
        stat.S_ISDIR(info.st_mode) and info.st_uid == 0 and bool(info.st_mode & stat.S_ISVTX)
    )
    return HOST_LOCK_DIR / HOST_LOCK_NAME if sticky_root_dir else fallback_dir / LOCK_NAME


@dataclass(frozen=True)
class HeldLock:
    """A lock we hold: who we are, and the open file (to hand it to the spec's user)."""

    holder: Holder
    path: Path
    fd: int

    def share_with(self, owner: Account | None) -> None:
        """As root, give a lock file root created to `owner`, so their timer can take it too."""
        if owner is None or os.geteuid() != 0 or owner.uid == 0:
            return
        if os.fstat(self.fd).st_uid == 0:
            os.fchown(self.fd, owner.uid, owner.gid)


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
    with hold_lock(
        directory / LOCK_NAME,
        timeout_s,
        command=command,
        on_wait=on_wait,
        clock=clock,
        sleep=sleep,
    ) as held:
        yield held.holder


@contextlib.contextmanager
def hold_lock(
    path: Path,
    timeout_s: float,
    *,
    command: str | None = None,
    on_wait: Callable[[Holder | None], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[HeldLock]:
    """Hold the lock file `path` for the `with` block (see `apply_lock`).

    Raises LockUnusable when `path` is not a regular file we may open.
    """
    fd = _open_lock(path)
    try:
        _acquire(fd, path, timeout_s, on_wait, clock, sleep)
        me = Holder.me(command)
        _record(fd, me)
        try:
            yield HeldLock(me, path, fd)
        finally:
            # Clear the record before the kernel lets the next holder in, so that nobody reads
            # our details as if we still held it.
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _open_lock(path: Path) -> int:
    # O_CLOEXEC: children (systemctl, npm) must not inherit the descriptor, or a daemon they
    # leave behind would keep the lock held after we exit. O_NOFOLLOW: never lock (and then
    # truncate) whatever a planted symlink points at. O_NONBLOCK: a FIFO planted there must not
    # hang us at open; it is refused below.
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise LockUnusable(_open_problem(path, exc)) from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise LockUnusable(
            f"the lock file {path} is {file_type(info.st_mode)}, not a regular file: "
            f"remove it (rm {path}) and run again"
        )
    return fd


def _open_problem(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return f"the lock file {path} is a symbolic link: remove it (rm {path}) and run again"
    if exc.errno == errno.EISDIR:
        return (
            f"the lock file {path} is a directory, not a regular file: remove it "
            f"(rm -r {path}) and run again"
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        try:
            info = os.lstat(path)
            owner = f"owned by uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):04o}"
        except OSError:
            owner = "not readable"
        return (
            f"cannot open the lock file {path} ({owner}): it belongs to another user; run as "
            f"the spec's user or as root, or remove it as root (rm {path})"
        )
    return f"cannot open the lock file {path}: {exc.strerror or exc}"


def read_holder(directory: Path) -> Holder | None:
    """The holder recorded in the lock file (informative only; see the module docstring)."""
    return read_holder_at(directory / LOCK_NAME)


def read_holder_at(path: Path) -> Holder | None:
    """The holder recorded in the lock file `path` (never blocks on a planted FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return _read_fd(fd)
    finally:
        os.close(fd)


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
        return Holder.parse(os.pread(fd, MAX_HOLDER_BYTES, 0).decode("utf-8", errors="replace"))
    except OSError:
        return None
