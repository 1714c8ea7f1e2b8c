"""Reading input we do not control: never block, never take more than a limit, never recurse deep.

Every file the reconciler reads (spec, saved plan, snapshot, run records, suspension, lock,
gateway config, unit and env files) comes through `read_bounded`:

- opened with O_NONBLOCK (and O_NOFOLLOW where asked), so a FIFO or a device planted in its
  place cannot hang us at open; then `fstat` on the descriptor (not the path, which may have
  been swapped meanwhile) refuses anything that is not a regular file, naming what it is;
- read with a size limit: the size `fstat` reports is checked first, and at most limit+1 bytes
  are read whatever it said (`/proc` files and growing files report less than they hold).

JSON from such files goes through `loads_json`, which refuses nesting deeper than a limit
before parsing (a deeply nested plan file raised RecursionError).

A path that is followed (`follow=True`: the spec, a fleet file, a saved plan, a snapshot, each
named on the command line) is, when we are root, walked one component at a time from `/` (or
the working directory) with O_PATH|O_NOFOLLOW descriptors, links resolved here, as systemd's
`chase()` does with CHASE_SAFE: once the walk is in something a user owns (a folder or a link),
it goes on only into that user's own folders, links and files, or into what every account may
use (a folder with o+x, a file with o+r: `~/host.yaml -> /etc/reconciler/host.yaml` still
works). So `sudo reconciler plan ~u/host.yaml`, where u made host.yaml (or its folder) a link
to /etc/shadow or into /root, is refused before root opens anything u could not; a FIFO or a
device in the spec's place is refused from its O_PATH descriptor, never opened; and the file
opened is the one checked (same device and inode). Internal state (`follow=False`) is read from
root's own folders or as the user, and keeps the plain O_NOFOLLOW open.
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import re
import stat
from pathlib import Path
from typing import Any

MAX_DEPTH = 100  # JSON nesting: our documents need about 8


class InputRefused(OSError):
    """A file we will not read (not a regular file, too large), or JSON nested too deeply.

    An OSError, so that every reader already reporting "cannot read X: reason" reports this
    reason too; `str()` is the whole message (path, what is wrong, what to do).
    """

    def __init__(self, path: Path | str, problem: str, *, size: int | None = None) -> None:
        super().__init__(f"{path}: {problem}")
        self.strerror = problem
        self.filename = str(path)
        self.problem = problem
        self.size = size  # set when the file is too large: its size (or a lower bound)

    def __str__(self) -> str:
        return f"{self.filename}: {self.problem}"


def read_bounded(path: Path | str, limit: int, *, follow: bool = True) -> bytes:
    """The bytes of the regular file at `path`, at most `limit` of them (else InputRefused).

    `follow=False` refuses a symlink as the last component (ELOOP, an OSError).
    """
    if follow and os.geteuid() == 0:
        fd = _open_chased(path)  # module docstring: root follows no user's link out of their files
    else:
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
        fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputRefused(path, f"is {file_type(info.st_mode)}, not a regular file")
        if info.st_size > limit:
            raise InputRefused(path, _too_large(info.st_size, limit), size=info.st_size)
        chunks: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise InputRefused(path, _too_large(total, limit, more=True), size=total)
        return b"".join(chunks)
    finally:
        os.close(fd)


_MAX_LINKS = 40  # as the kernel (ELOOP)
_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_chased(path: Path | str) -> int:
    """As root: a read-only descriptor of the regular file at `path`, reached as the module
    docstring says; InputRefused for a step a user's files must not make root take, or a file
    that is not regular; OSError as open(2) would say."""
    text = os.fspath(path)
    if not text:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), text)
    here = os.open("/" if text.startswith("/") else ".", _PATH | os.O_DIRECTORY)
    try:
        info = os.fstat(here)
        user = None if info.st_uid == 0 else info.st_uid  # whose files the walk is in
        todo = _parts(text)
        links = 0
        while todo:
            name = todo.pop(0)
            child = os.open(name, _PATH, dir_fd=here)  # `..` too: the physical parent
            info = os.fstat(child)
            if user is None and info.st_uid != 0:
                user = info.st_uid
            elif user is not None and info.st_uid != user and not _open_to_others(info):
                os.close(child)
                raise _crossing(path, user, info)
            if stat.S_ISLNK(info.st_mode):
                links += 1
                target = os.readlink("", dir_fd=child)  # readlinkat on the link just checked
                os.close(child)
                if links > _MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), text)
                # An absolute target starts again from the top: `/` is checked like any folder.
                todo[:0] = ["/"] * target.startswith("/") + _parts(target)
                continue
            if name == "/" or todo:  # a folder to go on from (ENOTDIR from the next open)
                os.close(here)
                here = child
                continue
            os.close(child)
            if not stat.S_ISREG(info.st_mode):  # refused before it is ever opened
                raise InputRefused(path, f"is {file_type(info.st_mode)}, not a regular file")
            fd = os.open(
                name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=here
            )
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
                os.close(fd)
                raise InputRefused(path, "was replaced while it was being opened; try again")
            return fd
        raise InputRefused(path, f"is {file_type(info.st_mode)}, not a regular file")
    finally:
        os.close(here)


def _open_to_others(info: os.stat_result) -> bool:
    """Could any account take this step: a folder others may search, a file others may read,
    a link (where it leads is checked next)."""
    mode = info.st_mode
    if stat.S_ISLNK(mode):
        return True
    if stat.S_ISDIR(mode):
        return bool(mode & stat.S_IXOTH)
    return stat.S_ISREG(mode) and bool(mode & stat.S_IROTH)


def _parts(text: str) -> list[str]:
    return [part for part in text.split("/") if part not in ("", ".")]


def _crossing(path: Path | str, user: int, info: os.stat_result) -> InputRefused:
    """Refusal of a step from `user`'s files into something of another account's that `user`
    could not take themselves."""
    owner = _account(user)
    what = "a regular file" if stat.S_ISREG(info.st_mode) else file_type(info.st_mode)
    return InputRefused(
        path,
        f"leads from {owner}'s files into {what} of {_account(info.st_uid)} that {owner} may "
        f"not read: as root, the reconciler reads through a user's files only what that user "
        f"could (systemd's chase() rule, relaxed for what every account may read); name the "
        f"file by its own path, or run the command as {owner}",
    )


def _account(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def read_text_bounded(path: Path | str, limit: int, *, follow: bool = True) -> str:
    """`read_bounded` decoded as UTF-8 (UnicodeDecodeError, a ValueError, when it is not)."""
    return read_bounded(path, limit, follow=follow).decode("utf-8")


def loads_json(data: bytes | str, *, source: Path | str, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads`, refusing nesting deeper than `max_depth` (InputRefused) before parsing."""
    depth = json_depth(data)
    if depth > max_depth:
        raise InputRefused(
            source, f"JSON nested {depth} levels deep (at most {max_depth}): not a file we wrote"
        )
    return json.loads(data)


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # unrolled: 3x faster
_BRACKET = re.compile(rb"[\[\]{}]")


def json_depth(data: bytes | str) -> int:
    """The deepest nesting of arrays and objects in JSON text (strings skipped), in one pass."""
    raw = data.encode("utf-8", errors="replace") if isinstance(data, str) else data
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub(b"", raw)):
        if match.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def file_type(mode: int) -> str:
    """`a FIFO (named pipe)`, `a directory`, ... for a file type that is not a regular file."""
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _too_large(size: int, limit: int, *, more: bool = False) -> str:
    return f"too large ({size}{' or more' if more else ''} bytes; at most {limit} are read)"
