"""Do file work as the spec's user, in a child process that dropped root for good.

`apply` runs as root (linger and the operator need it) but acts in a home the user controls.
Switching only the effective uid of the whole process, or opening the last component with
O_NOFOLLOW, still lets a symlink planted in a parent directory (or swapped in while root reads
the confirmation prompt) redirect root. Here a forked child sets its real, effective and saved
uid/gid and its supplementary groups to the user's before touching any path, so the kernel checks
every component of every path with the user's permissions: the worst a planted link can do is
make us change something the user could have changed anyway.

An admin account that logs in (neither root nor the user) cannot fork its way to the user. When
`sudo -n -u USER` lets it act as the user (host.sudo_to_user), the work goes to one helper
process started that way for the whole run (`ThroughSudo`): the work is sent as a pickle (the
helper runs as the user, whom the admin may act as anyway), the answer comes back as the same
JSON the forked child writes. One sudo per run, never a shell string.

The child hands back a JSON value through a pipe (never pickle: the parent is root and must not
execute what a child running as the user produced); an OSError in the child is raised again in
the parent with the same errno, message and file name. Secrets the child learnt (a token it
generated, values in a file it read: reconciler.core.secrets) come back with the answer, so that
the parent masks them in every output, as if it had read the file itself.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import json
import os
import pickle
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from reconciler.core.host import Account, HostContext
from reconciler.core.secrets import known_secrets, remember_secret
from reconciler.frozen import frozen

# A file read for a plan is at most 64 MiB (facts.files.MAX_FILE_BYTES); JSON writes a byte as
# at most 6 (`\u0000`).
_RESULT_LIMIT = 6 * 64 * 1024 * 1024 + (1 << 20)


_in_child = False


def in_child() -> bool:
    """True in a child that dropped to the user: it must not look up names (NSS may hold a lock
    another thread of the parent had at the fork); the parent names owners instead."""
    return _in_child


class ChildFailed(OSError):
    """The child acting as the user died without an answer (killed, or a bug in it)."""


@frozen
class ThroughSudo(Account):
    """The spec's user as an admin account reaches it: through `sudo -n -u NAME` (we are not
    root, so no fork can drop to it); `call_as` hands the work to the helper started so."""


def acting_account(host: HostContext) -> Account | None:
    """Whose permissions file work on the user's paths needs: the spec user's when we are root
    (or an admin that sudo lets act as the user) and are not that user; None when we are the
    user already (or nobody to drop to)."""
    user = host.user
    if user is None or user.uid == 0 or host.acting_as_user:
        return None
    if host.sudo_to_user and not host.is_root:
        return ThroughSudo(user.name, user.uid, user.gid, user.home)
    if not host.is_root:
        return None
    return user


def call_as(account: Account | None, work: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    """Run `work` with `account`'s permissions and return its JSON-serialisable result.

    In-process when `account` is None or we are not really root (nothing to drop: the kernel
    already checks our own permissions). Otherwise in a forked child that drops to the account
    before calling `work`; a child still busy after `timeout_s` (a FIFO swapped in, a hung
    network file system) is killed and reported, never waited for forever.
    """
    if isinstance(account, ThroughSudo) and os.geteuid() != account.uid:
        return _through_sudo(account, work, timeout_s)
    if account is None or os.geteuid() != 0:
        return work()
    groups = _groups(account)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        _child(account, groups, work, write_end)
    os.close(write_end)
    try:
        data = _read_all(read_end, time.monotonic() + timeout_s)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        raise
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    return _answer(account, data, status)


def _groups(account: Account) -> list[int]:
    try:
        return os.getgrouplist(account.name, account.gid)
    except OSError:
        return [account.gid]


def _child(account: Account, groups: list[int], work: Callable[[], Any], out: int) -> None:
    global _in_child
    _in_child = True
    code = 0
    try:
        # Hold no descriptor of the parent's (a lock above all): only the answer pipe.
        os.closerange(3, out)
        os.closerange(out + 1, _max_fd())
        os.setgroups(groups)
        os.setresgid(account.gid, account.gid, account.gid)
        os.setresuid(account.uid, account.uid, account.uid)
        if os.getresuid() != (account.uid,) * 3 or os.getresgid() != (account.gid,) * 3:
            raise PermissionError("could not drop root")  # never work with root left over
        data = _payload(work)
        view = memoryview(data)
        while view:
            view = view[os.write(out, view) :]
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _payload(work: Callable[[], Any]) -> bytes:
    """`work()`'s answer (or its error) and the secrets it learnt, as JSON for the parent."""
    known = known_secrets()
    try:
        payload: dict[str, Any] = {"value": work()}
    except OSError as exc:
        payload = {"errno": exc.errno, "strerror": exc.strerror, "filename": exc.filename}
        if exc.errno is None:
            payload["strerror"] = str(exc)
    except Exception as exc:  # reported to the parent, which decides what to say
        payload = {"error": f"{type(exc).__name__}: {exc}"}
    payload["secrets"] = sorted(known_secrets() - known)
    return json.dumps(payload, default=str).encode("utf-8")


def _max_fd() -> int:
    try:
        return max(int(name) for name in os.listdir("/proc/self/fd")) + 1
    except (OSError, ValueError):
        return os.sysconf("SC_OPEN_MAX")


def _read_all(fd: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise ChildFailed(errno.ETIMEDOUT, "the process acting as the user timed out")
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        size += len(chunk)
        if size > _RESULT_LIMIT:
            raise ChildFailed(0, "the child acting as the user answered too much")
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(account: Account, data: bytes, status: int) -> Any:
    if not data:
        if os.WIFSIGNALED(status):
            why = f"was killed by signal {os.WTERMSIG(status)}"
        else:
            why = f"exited with status {os.waitstatus_to_exitcode(status)} without an answer"
        raise ChildFailed(0, f"the process acting as {account.name} {why}")
    payload = json.loads(data)
    for secret in payload.get("secrets", ()):
        if isinstance(secret, str):
            remember_secret(secret)
    if "value" in payload:
        return payload["value"]
    if "error" in payload:
        raise ChildFailed(0, f"acting as {account.name}: {payload['error']}")
    raise OSError(payload.get("errno") or 0, payload.get("strerror"), payload.get("filename"))


# --- an admin account: the helper that `sudo -n -u USER` starts -----------------------------

# Standard library only until the package is on sys.path: `zip` reads the running zipapp (which
# lies in the admin's private cache, unreadable by the user) from stdin into a memfd; `path`
# gets the folders our own sys.path found the package and its dependencies in.
HELPER = r"""
import os, sys
if sys.argv[1] == "zip":
    size = int.from_bytes(sys.stdin.buffer.read(8), "big")
    data = sys.stdin.buffer.read(size)
    fd = os.memfd_create("reconciler-agent")
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    sys.path.insert(0, "/proc/self/fd/%d" % fd)
else:
    sys.path[0:0] = sys.argv[2:]
from reconciler.system.as_user import serve
serve()
"""

_FRAME = 8  # bytes of a frame's length, big-endian
HELPER_START_S = 60.0  # sudo, a Python start and the package's import, on a busy host


class SudoRefused(OSError):
    """`sudo -n -u USER` did not start the helper; the message is sudo's own."""


class _Helper:
    """One `sudo -n -u USER -- PYTHON -I -c HELPER` process and its pipes, used one call at a
    time (a lock: fleet threads may share it)."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.lock = threading.Lock()
        # A file, never a pipe nobody reads (closed in `close`).
        self.errors: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        argv, code = _helper_argv(account)
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            cwd="/",
            close_fds=True,
        )
        assert self.proc.stdin is not None
        try:
            if code is not None:
                self.proc.stdin.write(len(code).to_bytes(_FRAME, "big") + code)
                self.proc.stdin.flush()
            hello = self.receive(time.monotonic() + HELPER_START_S)
        except OSError:
            hello = b""
        if hello != b"ready":
            self.close(keep_errors=True)
            why = self.stderr_tail() or "the helper did not start"
            self.errors.close()
            raise SudoRefused(errno.EPERM, why)

    def stderr_tail(self) -> str:
        self.errors.seek(0)
        lines = self.errors.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1].removeprefix("sudo: ") if lines else ""

    def receive(self, deadline: float) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        size = int.from_bytes(_read_exactly(fd, _FRAME, deadline), "big")
        if size > _RESULT_LIMIT:
            raise ChildFailed(0, f"the helper acting as {self.account.name} answered too much")
        return _read_exactly(fd, size, deadline)

    def call(self, blob: bytes, timeout_s: float) -> bytes:
        assert self.proc.stdin is not None
        self.proc.stdin.write(len(blob).to_bytes(_FRAME, "big") + blob)
        self.proc.stdin.flush()
        return self.receive(time.monotonic() + timeout_s)

    def close(self, *, keep_errors: bool = False) -> None:
        # EOF on its stdin ends it; sudo passes our SIGTERM on when it does not.
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if not keep_errors:
            self.errors.close()


_helpers: dict[str, _Helper] = {}
_helpers_lock = threading.Lock()


_archive: list[Path] = []  # the zipapp we were shipped in (sudo_reaches), for every start


def _helper_argv(account: Account) -> tuple[list[str], bytes | None]:
    """The helper's argv (never a shell string) and the zipapp to send first (None: the
    package is found in the folders named in argv)."""
    import reconciler

    where = Path(reconciler.__file__).parent.parent
    start = ["sudo", "-n", "-u", account.name, "--", sys.executable, "-I", "-c", HELPER]
    if _archive:  # the agent: its folder lies in the login user's private cache
        return [*start, "zip"], _archive[0].read_bytes()
    if where.is_file():  # a zipapp: /path/agent.pyz/reconciler/__init__.py
        return [*start, "zip"], where.read_bytes()
    folders = [str(where), *(p for p in sys.path if p and os.path.isdir(p) and p != str(where))]
    return [*start, "path", *folders], None


def _helper(account: Account) -> _Helper:
    with _helpers_lock:
        helper = _helpers.get(account.name)
        if helper is None or helper.proc.poll() is not None:
            helper = _Helper(account)
            _helpers[account.name] = helper
        return helper


def helper_running(name: str) -> bool:
    """True when this process acts as `name` through a helper `sudo_reaches` started."""
    with _helpers_lock:
        helper = _helpers.get(name)
        return helper is not None and helper.proc.poll() is None


def sudo_reaches(account: Account, archive: Path | None = None) -> str | None:
    """Start the helper for `account` (one `sudo -n -u`): None when it runs, else sudo's
    reason (`a password is required`, sudo missing, ...). `archive`: the zipapp we run from
    (facts/invocation.py running_zipapp), sent to the helper instead of our folders."""
    if archive is not None:
        _archive[:] = [archive]
    try:
        _helper(account)
    except SudoRefused as refused:
        return refused.strerror or "refused"
    except OSError as exc:  # no sudo here
        return f"{exc.filename or 'sudo'}: {exc.strerror or exc}"
    return None


def _through_sudo(account: Account, work: Callable[[], Any], timeout_s: float) -> Any:
    try:
        blob = pickle.dumps(work)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        # A bug, never the host's fault: work for the helper names module-level functions.
        raise ChildFailed(
            0, f"cannot hand this work to {account.name} through sudo: {exc}"
        ) from None
    helper = _helper(account)
    with helper.lock:
        try:
            data = helper.call(blob, timeout_s)
        except BaseException:  # a timeout, Ctrl-C: this helper's state is unknown, end it
            with _helpers_lock:
                _helpers.pop(account.name, None)
            helper.close()
            raise
    return _answer(account, data, 0)


def _read_exactly(fd: int, size: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    left = size
    while left:
        wait = deadline - time.monotonic()
        if wait <= 0 or not select.select([fd], [], [], wait)[0]:
            raise ChildFailed(errno.ETIMEDOUT, "the process acting as the user timed out")
        chunk = os.read(fd, min(left, 1 << 16))
        if not chunk:
            raise ChildFailed(0, "the process acting as the user exited without an answer")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def serve() -> None:
    """The helper's loop (as the user, started by HELPER): a pickled `work` in, its JSON answer
    out, until stdin ends. Its own output goes to stderr, never into the answers."""
    global _in_child
    _in_child = True  # the answers are those of the forked child: the parent names owners
    answers = os.dup(1)
    os.dup2(2, 1)
    requests = sys.stdin.buffer

    def send(data: bytes) -> None:
        view = memoryview(len(data).to_bytes(_FRAME, "big") + data)
        while view:
            view = view[os.write(answers, view) :]

    send(b"ready")
    while True:
        head = requests.read(_FRAME)
        if len(head) < _FRAME:
            return
        blob = requests.read(int.from_bytes(head, "big"))
        work = pickle.loads(blob)  # from the admin, who may act as this user anyway
        send(_payload(work))


@atexit.register
def close_helpers() -> None:
    """End every helper (at exit; tests): EOF on its stdin, then SIGTERM."""
    with _helpers_lock:
        for helper in _helpers.values():
            helper.close()
        _helpers.clear()
