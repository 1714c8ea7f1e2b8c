"""File operations that lose nothing: atomic writes with fsync, backups, exact modes."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from reconciler.core.host import Account

BACKUP_SUFFIX = ".reconciler-backup"


def backup_path(path: Path) -> Path:
    """Where the previous version of `path` is kept (systemd ignores this suffix)."""
    return path.with_name(path.name + BACKUP_SUFFIX)


def atomic_write(path: Path, content: str, mode: int, *, backup: bool) -> None:
    """Write `content` to `path` via a temp file in the same directory, fsync, rename.

    The temp file gets `mode` before any byte is written, so a secret never sits in a
    world-readable file; the previous file, if any, is copied to a 0600 backup first.
    """
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    if backup and path.is_file() and not path.is_symlink():
        _copy_private(path, backup_path(path))
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(parent)


def remove_file(path: Path, *, backup: bool) -> None:
    """Remove `path` (not following a symlink), keeping a backup of a regular file."""
    if backup and path.is_file() and not path.is_symlink():
        _copy_private(path, backup_path(path))
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    _fsync_dir(path.parent)


def ensure_directory(path: Path, mode: int, owner: Account | None) -> None:
    """Create `path` (parents too) and give it exactly `mode` and, when root, `owner`.

    The final directory is opened with O_NOFOLLOW so that a symlink planted in its place is
    refused rather than followed.
    """
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        info = os.fstat(fd)
        if (
            owner is not None
            and os.geteuid() == 0
            and (info.st_uid, info.st_gid)
            != (
                owner.uid,
                owner.gid,
            )
        ):
            os.fchown(fd, owner.uid, owner.gid)
        if stat.S_IMODE(info.st_mode) != mode:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)


@contextlib.contextmanager
def acting_as(account: Account | None) -> Iterator[None]:
    """When root, create and write files as `account` so the kernel enforces its permissions.

    A no-op when we are not root or no account is given. Only used while nothing else runs
    (apply is sequential), since the effective uid is per process.
    """
    if account is None or os.geteuid() != 0 or account.uid == 0:
        yield
        return
    groups = os.getgroups()
    os.setgroups(os.getgrouplist(account.name, account.gid))
    os.setegid(account.gid)
    os.seteuid(account.uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)
        os.setgroups(groups)


def _copy_private(source: Path, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
