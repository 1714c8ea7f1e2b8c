"""File operations that lose nothing: atomic writes with fsync, backups, exact modes.

Temp files are named `.<target>.<pid>-<random>.reconciler-tmp`, so that a write killed half way
(kill -9, power loss) leaves a file a later run recognises and removes: the next write of the
same target sweeps it first, and `stale_temp_files` lets a plan list them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import stat
import threading
from pathlib import Path

from reconciler.bounded import InputRefused
from reconciler.core.action import (
    EnsureDirectory,
    EnsureSecretEnv,
    MoveAside,
    RemoveFile,
    WriteFile,
)
from reconciler.core.host import Account
from reconciler.core.secrets import learn_secrets, remember_secret
from reconciler.facts.files import BACKUP_SUFFIX, MAX_FILE_BYTES, backup_path, has_value

FileOperation = EnsureDirectory | WriteFile | RemoveFile | EnsureSecretEnv | MoveAside

TEMP_SUFFIX = ".reconciler-tmp"
# `.<name>.<pid>-<8 hex>.reconciler-tmp`; before these names, mkstemp's `.<name>.<8 chars>.tmp`.
_TEMP = re.compile(r"^\.(?P<target>.+)\.(?P<pid>[0-9]+)-[0-9a-f]{8}" + re.escape(TEMP_SUFFIX) + "$")
_LEGACY_TEMP = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$")

# Names of the temp files this process is writing right now. A temp file with our pid and a
# name not in here is an earlier, interrupted write of ours; one in here belongs to another
# thread of ours (specs applied side by side write into the same folders) and is not stale.
_WRITING: set[str] = set()
_WRITING_LOCK = threading.Lock()


def temp_target(name: str) -> str | None:
    """The file name a temp file called `name` was writing, when it is one of ours."""
    found = _TEMP.match(name) or _LEGACY_TEMP.match(name)
    return found.group("target") if found else None


def is_stale_temp(name: str) -> bool:
    """True for a temp file of ours whose writer is gone (a live writer's file is left alone)."""
    found = _TEMP.match(name)
    if found is None:
        return _LEGACY_TEMP.match(name) is not None
    return not _alive(int(found.group("pid")), name)


def _alive(pid: int, name: str) -> bool:
    if pid == os.getpid():
        with _WRITING_LOCK:
            return name in _WRITING
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def sweep_temp_files(directory: Path, target: str) -> list[str]:
    """Remove stale temp files in `directory`: ours of any target whose writer is gone, and the
    older mkstemp-style ones of `target` (and of its backup). Returns the names removed.

    Called before every write, so a write killed half way (its temp may hold a token) is gone
    once the next run writes into that directory, which it does: the target was not replaced.
    """
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    wanted = (target, target + BACKUP_SUFFIX)
    removed = []
    for name in sorted(names):
        ours = _TEMP.match(name) is not None or temp_target(name) in wanted
        if ours and is_stale_temp(name):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(directory / name)
                removed.append(name)
    return removed


def _create_temp(parent: Path, target: str, mode: int) -> tuple[int, Path]:
    """A new temp file for `target` with `mode` from its first byte (O_EXCL, never a link)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        tmp = parent / f".{target}.{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}"
        with _WRITING_LOCK:
            _WRITING.add(tmp.name)  # before the file exists: a sweep never sees it unclaimed
        try:
            fd = os.open(tmp, flags, 0o600)
        except FileExistsError:
            _done_writing(tmp)
            continue
        except BaseException:
            _done_writing(tmp)
            raise
        os.fchmod(fd, mode)  # exactly `mode`, whatever the umask
        return fd, tmp


def _done_writing(tmp: Path) -> None:
    with _WRITING_LOCK:
        _WRITING.discard(tmp.name)


def atomic_write(
    path: Path, content: str, mode: int, *, backup: bool, only_over_regular: bool = False
) -> None:
    """Write `content` to `path` via a temp file in the same directory, fsync, rename.

    The temp file gets `mode` before any byte is written, so a secret never sits in a
    world-readable file; the previous file, if any, is copied to a 0600 backup first.
    `only_over_regular`: right before the rename, refuse (OutRefused) to replace anything but a
    regular file.
    """
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    sweep_temp_files(parent, path.name)
    if backup and path.is_file() and not path.is_symlink():
        _copy_private(path, backup_path(path))
    fd, tmp = _create_temp(parent, path.name, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        problem = out_problem(path) if only_over_regular else None
        if problem is not None:
            raise OutRefused(problem)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        _done_writing(tmp)
    _fsync_dir(parent)


class OutRefused(OSError):
    """An output path (`--out`) that holds something other than a regular file: never replaced.

    `str()` is the whole message: the path, what is there, what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.strerror = message

    def __str__(self) -> str:
        return str(self.strerror)


def out_problem(path: Path) -> str | None:
    """Why `--out PATH` must not be written: something other than a regular file is there (a
    symlink, FIFO, device node, socket, directory). None: nothing there, or a regular file."""
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None  # nothing there (a missing folder is the caller's to report)
    if stat.S_ISREG(info.st_mode):
        return None
    from reconciler.bounded import file_type

    return (
        f"cannot write {path}: it is {file_type(info.st_mode)}, and an output file is only ever "
        "a new or a regular file (replacing it would replace the link or the device itself); "
        "name another path"
    )


def write_out(path: Path, content: str, mode: int) -> None:
    """`atomic_write` for an output the user named (`--out`): refused (OutRefused) when a
    symlink, FIFO or device node stands there, checked again just before the rename (the
    rename would replace a device node such as /dev/full for the whole machine)."""
    problem = out_problem(path)
    if problem is not None:
        raise OutRefused(problem)
    atomic_write(path, content, mode, backup=False, only_over_regular=True)


def remove_file(path: Path, *, backup: bool) -> None:
    """Remove `path` (not following a symlink), keeping a backup of a regular file."""
    if backup and path.is_file() and not path.is_symlink():
        _copy_private(path, backup_path(path))
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    _fsync_dir(path.parent)


def ensure_directory(path: Path, mode: int, owner: Account | None) -> None:
    """Create `path` (parents too) with exactly `mode`; never take over someone else's.

    The final directory is opened with O_NOFOLLOW so that a symlink planted in its place is
    refused rather than followed. An existing directory that belongs to anyone but `owner` (or,
    without `owner`, to anyone but us) is refused, never chown-ed or chmod-ed: root is not to
    hand another account's directory to the spec's user. A directory we create is ours.
    """
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and path.is_symlink():
            raise OSError(
                errno.ELOOP,
                "a symlink is here, and it is not followed (replace it with a directory)",
                str(path),
            ) from None
        raise
    try:
        info = os.fstat(fd)
        expected = owner.uid if owner is not None else os.geteuid()
        if info.st_uid != expected:
            raise PermissionError(
                errno.EPERM,
                f"belongs to {_user_name(info.st_uid)}, not {_user_name(expected)}; "
                "refusing to take it over (chown it yourself if it really is theirs, or point "
                "the spec elsewhere)",
                str(path),
            )
        if stat.S_IMODE(info.st_mode) != mode:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _copy_private(source: Path, target: Path) -> None:
    fd, tmp = _create_temp(target.parent, target.name, 0o600)
    try:
        src_fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "wb") as out, os.fdopen(src_fd, "rb") as src:
            shutil.copyfileobj(src, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        _done_writing(tmp)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_secret_env(path: Path, key: str, mode: int) -> bool:
    """Give the env file at `path` a random `key=` value unless it has a non-empty one.

    Returns True when a value was generated. An existing value is never replaced (clients
    paired with it keep working); a wrong mode is fixed. The value is hex, so it needs no
    quoting in a systemd EnvironmentFile=. A symlink in the file's place is never followed.
    """
    lines: list[str] = []
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        fd = -1
    if fd >= 0:
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise OSError(errno.EINVAL, "not a regular file (move it away)", str(path))
            data = handle.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                raise InputRefused(path, f"too large (at most {MAX_FILE_BYTES} bytes are read)")
            text = data.decode("utf-8")
            if has_value(text, key):  # the probe's own test: kept once it exists
                learn_secrets(text)  # the kept token is masked wherever it shows
                if stat.S_IMODE(info.st_mode) != mode:
                    os.fchmod(handle.fileno(), mode)
                return False
        lines = [line for line in text.splitlines() if line.partition("=")[0].strip() != key]
    token = secrets.token_hex(32)
    remember_secret(token)  # never printed: masked in every output and record from now on
    lines.append(f"{key}={token}")
    atomic_write(path, "\n".join(lines) + "\n", mode, backup=False)
    return True


def move_aside(path: Path, suffix: str) -> str:
    """Rename `path` to `<name><suffix>` beside it (a symlink as the link: rename never follows
    the last component); the new path, or "" when there was nothing. Never replaces anything."""
    if not os.path.lexists(path):
        return ""
    aside = path.with_name(path.name + suffix)
    if os.path.lexists(aside):
        raise FileExistsError(errno.EEXIST, "already exists; not replaced", str(aside))
    os.rename(path, aside)
    return str(aside)


def file_operation(operation: FileOperation) -> str:
    """Carry out one file operation with whatever permissions this process has; its detail.

    The runner calls this in a child that dropped to the spec's user when we are root.
    """
    if isinstance(operation, EnsureDirectory):
        ensure_directory(operation.path, operation.mode, None)
        return ""
    if isinstance(operation, WriteFile):
        atomic_write(operation.path, operation.content, operation.mode, backup=operation.backup)
        return ""
    if isinstance(operation, RemoveFile):
        remove_file(operation.path, backup=operation.backup)
        return ""
    if isinstance(operation, MoveAside):
        return move_aside(operation.path, operation.suffix)
    created = ensure_secret_env(operation.path, operation.key, operation.mode)
    return "generated" if created else "kept"
