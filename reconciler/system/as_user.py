"""Do file work as the spec's user, in a child process that dropped root for good.

`apply` runs as root (linger and the operator need it) but acts in a home the user controls.
Switching only the effective uid of the whole process, or opening the last component with
O_NOFOLLOW, still lets a symlink planted in a parent directory (or swapped in while root reads
the confirmation prompt) redirect root. Here a forked child sets its real, effective and saved
uid/gid and its supplementary groups to the user's before touching any path, so the kernel checks
every component of every path with the user's permissions: the worst a planted link can do is
make us change something the user could have changed anyway.

The child hands back a JSON value through a pipe (never pickle: the parent is root and must not
execute what a child running as the user produced); an OSError in the child is raised again in
the parent with the same errno, message and file name. Secrets the child learnt (a token it
generated, values in a file it read: reconciler.core.secrets) come back with the answer, so that
the parent masks them in every output, as if it had read the file itself.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import time
from collections.abc import Callable
from typing import Any

from reconciler.core.host import Account, HostContext
from reconciler.core.secrets import known_secrets, remember_secret

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


def acting_account(host: HostContext) -> Account | None:
    """Whose permissions file work on the user's paths needs: the spec user's when we are root
    and are not that user; None when we are the user already (or nobody to drop to)."""
    user = host.user
    if user is None or not host.is_root or user.uid == 0 or host.acting_as_user:
        return None
    return user


def call_as(account: Account | None, work: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    """Run `work` with `account`'s permissions and return its JSON-serialisable result.

    In-process when `account` is None or we are not really root (nothing to drop: the kernel
    already checks our own permissions). Otherwise in a forked child that drops to the account
    before calling `work`; a child still busy after `timeout_s` (a FIFO swapped in, a hung
    network file system) is killed and reported, never waited for forever.
    """
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
        data = json.dumps(payload, default=str).encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.write(out, view) :]
    except BaseException:
        code = 1
    finally:
        os._exit(code)


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
