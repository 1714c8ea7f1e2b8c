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
"""

from __future__ import annotations

import json
import os
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
