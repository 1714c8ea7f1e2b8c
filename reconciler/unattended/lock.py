"""The apply lock: one apply at a time per host, whoever runs it, and never a stale lock.

A lock no other local user can take first. A lock file in a world-writable directory (it was
`/run/lock/reconciler.lock`, in the 1777 `/run/lock`) can be created and flock()ed by any
local user before we come, which locked root and the gateway user out. So every lock file here
lives in a directory only root, or only root and the spec's user, can create entries in:

- the spec's user (their timer, or by hand) locks `<their state dir>/lock`, in their private
  0700 `~/.local/state/reconciler/` (`$XDG_STATE_HOME/reconciler/`);
- root first locks `/run/reconciler/lock` (`/run` and the 0755 `/run/reconciler` it creates
  are root's alone), which orders root's runs among themselves before the spec is read; then,
  once the spec names its user, `HeldLock.join` also locks that user's
  `~user/.local/state/reconciler/lock`, the file their timer takes, so root and the timer
  never run at once. Root opens it as the user's directory deserves: the directory is made by a
  child acting as the user, then opened from `/` one component at a time without following a
  symlink, through directories only root or the user control (shell/anchored.py), and the file
  must be a regular file of the user's (or root's) with one link.

Only root and the spec's user can hold that file, and the user holding it only pauses runs for
their own gateways. Root always takes the root lock first and the user's second, and the user
never waits for the root lock, so two runs can never wait for each other.

Without `/run` usable (not a root-owned directory: a container without it), root falls back to
its own `<state dir>/lock`. A caller that names its own state directory (tests) locks there.

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
from dataclasses import asdict
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from reconciler.bounded import file_type
from reconciler.core.host import Account
from reconciler.frozen import frozen
from reconciler.unattended import ensure_state_dir

LOCK_NAME = "lock"
ROOT_LOCK_DIR = Path("/run/reconciler")  # root's own, 0755, in the root-only /run
USER_STATE_DIR = Path(".local/state/reconciler")  # in the spec's user's home: what root joins
MAX_HOLDER_BYTES = 64 * 1024  # a holder record is one short JSON line
POLL_S = 0.2  # how often a waiting apply retries; flock has no timeout of its own


@frozen
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
    """The lock this process takes first: root's `/run/reconciler/lock` as root (the directory
    created when missing), else `fallback_dir/lock` (the invoker's own state directory)."""
    if os.geteuid() != 0:
        return fallback_dir / LOCK_NAME
    try:
        os.mkdir(ROOT_LOCK_DIR, 0o755)
    except FileExistsError:
        pass
    except OSError:  # no /run here (a container): root's own state directory
        return fallback_dir / LOCK_NAME
    info = os.lstat(ROOT_LOCK_DIR)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
        what = "a directory" if stat.S_ISDIR(info.st_mode) else file_type(info.st_mode)
        raise LockUnusable(
            f"{ROOT_LOCK_DIR} is {what} owned by uid {info.st_uid}, mode "
            f"{stat.S_IMODE(info.st_mode):04o}, but it must be root's directory writable by root "
            f"alone: remove it as root (rm -r {ROOT_LOCK_DIR}) and run again"
        )
    return ROOT_LOCK_DIR / LOCK_NAME


def user_lock_path(owner: Account) -> Path:
    """The lock file of the spec's user that root joins: the one their timer takes."""
    return owner.home / USER_STATE_DIR / LOCK_NAME


@frozen
class _Wait:
    """How a holder waits for a lock (kept to join the user's lock the same way)."""

    timeout_s: float
    on_wait: Callable[[Holder | None], None] | None
    clock: Callable[[], float]
    sleep: Callable[[float], None]


@frozen
class HeldLock:
    """A lock we hold: who we are, the open file, and what else we hold with it."""

    holder: Holder
    path: Path
    fd: int
    wait: _Wait
    more: contextlib.ExitStack

    def join(self, owner: Account | None) -> None:
        """As root acting for `owner`: also hold `owner`'s own lock (the one their timer takes)
        until this lock is released. Raises LockBusy when the wait runs out, LockUnusable when
        the file cannot be used safely (see the module docstring)."""
        if owner is None or owner.uid == 0 or os.geteuid() == owner.uid:
            return
        if os.geteuid() != 0:
            from reconciler.system.as_user import ThroughSudo, helper_running

            if helper_running(owner.name):  # an admin account that acts through sudo -n -u
                self._join_through_sudo(ThroughSudo(**asdict(owner)))
            return
        path = user_lock_path(owner)
        fd = _open_user_lock(owner, path)
        self.more.callback(os.close, fd)
        _acquire(fd, path, self.wait)
        _record(fd, self.holder)
        self.more.callback(_release, fd)

    def _join_through_sudo(self, owner: Account) -> None:
        """`join` for an admin account: the helper acting as `owner` (system/as_user.py) opens
        and holds their lock, as their timer would; it lets go when told, or when it ends with
        us (EOF on its stdin: the kernel drops a dead holder's flock)."""
        from reconciler.system.as_user import call_as

        path = user_lock_path(owner)
        record = json.dumps(asdict(self.holder), sort_keys=True) + "\n"
        wait, started, waiting = self.wait, self.wait.clock(), False
        while True:
            try:
                busy = call_as(owner, partial(_take_in_helper, str(path), record))
            except OSError as exc:
                raise LockUnusable(_open_problem(path, exc)) from exc
            if busy is None:
                break
            holder = Holder.parse(busy) if isinstance(busy, str) else None
            waited = wait.clock() - started
            if waited >= wait.timeout_s:
                raise LockBusy(path, holder, waited)
            if not waiting and wait.on_wait is not None:
                wait.on_wait(holder)
            waiting = True
            wait.sleep(min(POLL_S, max(wait.timeout_s - waited, 0.0)))
        self.more.callback(call_as, owner, partial(_let_go_in_helper, str(path)))


# In the helper acting as the user for an admin account: the locks it holds, by path.
_HELD_IN_HELPER: dict[str, int] = {}


def _take_in_helper(path: str, record: str) -> str | None:
    """As the user, in the helper: take the lock at `path` and keep it (None), or the record
    of its holder when it is busy."""
    ensure_state_dir(Path(path).parent)
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
    fd = os.open(path, flags, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        text = os.pread(fd, MAX_HOLDER_BYTES, 0).decode("utf-8", errors="replace")
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise
        return text
    os.ftruncate(fd, 0)
    os.pwrite(fd, record.encode("utf-8"), 0)
    os.fsync(fd)
    _HELD_IN_HELPER[path] = fd
    return None


def _let_go_in_helper(path: str) -> bool:
    fd = _HELD_IN_HELPER.pop(path, None)
    if fd is None:
        return False
    _release(fd)
    os.close(fd)
    return True


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
    wait = _Wait(timeout_s, on_wait, clock, sleep)
    try:
        _acquire(fd, path, wait)
        me = Holder.me(command)
        _record(fd, me)
        try:
            with contextlib.ExitStack() as more:
                yield HeldLock(me, path, fd, wait, more)
        finally:
            _release(fd)
    finally:
        os.close(fd)


def _release(fd: int) -> None:
    # Clear the record before the kernel lets the next holder in, so that nobody reads our
    # details as if we still held it.
    os.ftruncate(fd, 0)
    fcntl.flock(fd, fcntl.LOCK_UN)


def _open_user_lock(owner: Account, path: Path) -> int:
    """As root: the user's lock file, opened without trusting anything the user could swap."""
    from reconciler.shell.anchored import PathRefused, open_directory
    from reconciler.system.as_user import call_as

    directory = path.parent
    try:
        # Made as the user (their home, their rights), then reached as root without following
        # anything: a symlink or a directory of another account on the way is refused.
        call_as(owner, lambda: str(ensure_state_dir(directory)))
        with open_directory(directory, owner.uid, owner.gid) as dir_fd:
            flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
            fd = os.open(LOCK_NAME, flags, 0o600, dir_fd=dir_fd)
    except PathRefused as refused:
        raise LockUnusable(
            f"cannot take the lock {path} of {owner.name}: {refused}; only root and "
            f"{owner.name} may control the way to it"
        ) from None
    except OSError as exc:
        raise LockUnusable(_open_problem(path, exc)) from exc
    info = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = f"is {file_type(info.st_mode)}, not a regular file"
    elif info.st_uid not in (0, owner.uid):
        problem = f"is owned by uid {info.st_uid}, not by {owner.name}"
    elif info.st_nlink != 1:
        problem = f"has {info.st_nlink} hard links (another file's name)"
    if problem is not None:
        os.close(fd)
        raise LockUnusable(f"the lock file {path} {problem}: remove it (rm {path}) and run again")
    if info.st_uid == 0:  # an older root run made it: the user's timer must open it too
        os.fchown(fd, owner.uid, owner.gid)
    return fd


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


def _acquire(fd: int, path: Path, wait: _Wait) -> None:
    started = wait.clock()
    waiting = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
        waited = wait.clock() - started
        if waited >= wait.timeout_s:
            raise LockBusy(path, _read_fd(fd), waited)
        if not waiting and wait.on_wait is not None:
            wait.on_wait(_read_fd(fd))
        waiting = True
        wait.sleep(min(POLL_S, max(wait.timeout_s - waited, 0.0)))


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
