"""File work in a directory other accounts may control, through directory descriptors.

systemd's `chase()` discipline: a path is opened one component at a time from `/`, each with
O_NOFOLLOW|O_DIRECTORY relative to the descriptor of its parent, and each directory on the way
must belong to an account we trust (root, or the one account the work is for) and be writable
by nobody else (a sticky directory such as /tmp excepted: its entries keep their owners, and the
next component's owner is checked in turn). Nothing can then be swapped in by someone we do not
trust between the check and the use: every later open, rename and read is relative to the
descriptor we checked, never a path resolved again.

Used where root touches a file in a directory the spec's user may write (the metrics folder, the
user's lock file): the user may still rename or replace entries of their own directory, so every
file is opened with O_NOFOLLOW|O_NONBLOCK and checked on its descriptor, read with a size limit,
and replaced by rename (which replaces a FIFO or device node instead of opening it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from reconciler.bounded import InputRefused, file_type

TEMP_SUFFIX = ".reconciler-tmp"


class PathRefused(OSError):
    """A path we will not act through: a symlink, or a directory someone untrusted controls.

    `str()` is the whole message (the path, what is wrong with it)."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.strerror = problem
        self.filename = str(path)

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


def _refusal(info: os.stat_result, uid: int, gid: int) -> str | None:
    """Why a directory (as `info` shows it) cannot be trusted, or None."""
    if info.st_uid not in (0, uid):
        return f"is owned by uid {info.st_uid}, not by root or the account the file is for"
    sticky = bool(info.st_mode & stat.S_ISVTX)
    if info.st_mode & stat.S_IWOTH and not sticky:
        return "is writable by every user (not a sticky directory)"
    # Group-writable is fine for root's group or the account's own primary group (the metrics
    # folder is root:<user's group> 0775); another group may hold other users.
    if info.st_mode & stat.S_IWGRP and not sticky and info.st_gid not in (0, gid):
        return f"is writable by group {info.st_gid}, which may hold other users"
    return None


@contextlib.contextmanager
def open_directory(path: Path | str, uid: int, gid: int) -> Iterator[int]:
    """A descriptor of the directory `path`, reached from `/` without following a symlink and
    through directories only root or the account `uid` (primary group `gid`) control
    (PathRefused otherwise, or the OSError of a missing component). Closed after the block.

    The caller passes ids, never a name: in a child that dropped root, name lookups may hang."""
    target = Path(path)
    if not target.is_absolute():
        raise PathRefused(target, "is not an absolute path")
    # O_PATH on the way: passing through needs search permission only (a 0711 directory).
    flags = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open("/", flags)
    where = Path("/")
    try:
        for part in target.parts[1:]:
            if part in (".", ".."):
                raise PathRefused(target, f"has a `{part}` component")
            where = where / part
            try:
                child = os.open(part, flags, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # a symlink, a file
                    what = _lstat_kind(part, fd)
                    raise PathRefused(where, f"is {what}, not a directory") from None
                raise
            os.close(fd)
            fd = child
            problem = _refusal(os.fstat(fd), uid, gid)
            if problem is not None:
                raise PathRefused(where, problem)
        # The directory itself, opened for real through the descriptor just checked.
        opened = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)
    try:
        yield opened
    finally:
        os.close(opened)


def _lstat_kind(name: str, dir_fd: int) -> str:
    try:
        mode = os.lstat(name, dir_fd=dir_fd).st_mode
    except OSError:
        return "not a directory"
    return "a regular file" if stat.S_ISREG(mode) else file_type(mode)


def read_at(dir_fd: int, name: str, limit: int, *, where: Path | str) -> bytes | None:
    """The bytes of the regular file `name` in `dir_fd`, at most `limit` (InputRefused when it
    is a FIFO, device, symlink... or larger); None when there is no such file. Never blocks."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputRefused(where, "is a symbolic link, not a regular file") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputRefused(where, f"is {file_type(info.st_mode)}, not a regular file")
        data = os.read(fd, limit + 1)
        if len(data) > limit:
            raise InputRefused(where, f"too large (more than {limit} bytes)")
        return data
    finally:
        os.close(fd)


def replace_at(dir_fd: int, name: str, data: bytes, mode: int) -> None:
    """Write `name` in `dir_fd` atomically: a new temp file (O_EXCL, never a link) with `mode`
    from its first byte, fsync, rename over whatever `name` is (a FIFO or a device node there
    is replaced, never opened), fsync of the directory."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        tmp = f".{name}.{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}"
        try:
            fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
            break
        except FileExistsError:
            continue
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    os.fsync(dir_fd)
