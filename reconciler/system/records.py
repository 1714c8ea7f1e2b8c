"""The one JSON-lines record store: run records (`runs.jsonl`) and backup records
(`backups.jsonl`) in the state directory, each a file rotated to a bounded size.

Each record is written with a single `write` on an O_APPEND descriptor followed by fsync, while
holding an flock on that descriptor (rotation renames the file under the same flock; a writer
that lost the race to a rotation notices the file changed under it and reopens). Opening never
follows a symlink and never blocks on a FIFO; anything but a regular file is refused. Reading is
bounded per file, and a line is parsed only when its nesting is shallow (a 50 000-deep line
raised RecursionError): a line torn by a crash, written by something else or too deep is
skipped, never fatal.

The directory is the user's: as root, callers run `append` and `read` as the user
(system/as_user.py), so both return only plain data.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from pathlib import Path
from typing import Any

from reconciler.bounded import InputRefused, file_type, loads_json, read_bounded
from reconciler.frozen import frozen

MAX_BYTES = 1024 * 1024  # rotate when the current file would grow past this
MAX_READ_BYTES = 16 * MAX_BYTES  # what we read of one file (someone else may have grown it)
MAX_LINE_BYTES = 256 * 1024  # a record is a few hundred bytes; a longer line is not ours
KEEP = 3  # rotated files kept: NAME.1 (newest) .. NAME.3


@frozen
class RecordFile:
    """`directory/name` and its rotated predecessors `name.1` .. `name.<keep>`."""

    directory: Path
    name: str
    max_bytes: int = MAX_BYTES
    keep: int = KEEP

    @property
    def path(self) -> Path:
        return self.directory / self.name

    def paths(self) -> list[Path]:
        """Oldest first: `name.<keep>` .. `name.1`, then `name`."""
        rotated = [self.directory / f"{self.name}.{n}" for n in range(self.keep, 0, -1)]
        return [*rotated, self.path]

    def append(self, line: str) -> str:
        """Append one line (no newline in it), rotating first when the file would grow past
        `max_bytes`; the file's path. The directory must exist."""
        if "\n" in line:
            raise ValueError("a record is one line")
        data = (line + "\n").encode("utf-8")
        path = self.path
        while True:
            # O_NONBLOCK: opening a planted FIFO for writing would wait for a reader forever.
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
            try:
                fd = os.open(path, flags | os.O_NONBLOCK, 0o600)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # a FIFO nobody reads
                    raise InputRefused(path, "is a FIFO (named pipe), not a regular file") from None
                raise
            try:
                mode = os.fstat(fd).st_mode
                if not stat.S_ISREG(mode):
                    raise InputRefused(path, f"is {file_type(mode)}, not a regular file")
                fcntl.flock(fd, fcntl.LOCK_EX)
                if not _same_file(fd, path):
                    continue  # rotated away while we waited for the flock: write to the new file
                size = os.fstat(fd).st_size
                if size > 0 and size + len(data) > self.max_bytes:
                    self._rotate()
                    continue
                _write_all(fd, data)
                os.fsync(fd)
                return str(path)
            finally:
                os.close(fd)  # also releases the flock

    def read(self) -> list[tuple[str, list[str]]]:
        """(path, lines) of every file, oldest first; a missing file has no lines. Raises
        InputRefused (an OSError) for a FIFO, device, symlink or oversized file."""
        out = []
        for path in self.paths():
            try:
                data = read_bounded(path, MAX_READ_BYTES, follow=False)
            except FileNotFoundError:
                continue
            out.append((str(path), data.decode("utf-8", errors="replace").splitlines()))
        return out

    def _rotate(self) -> None:
        """name -> .1 -> .2 ... ; the oldest beyond `keep` is dropped."""
        path = self.path
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}.{self.keep}")
        for n in range(self.keep - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.rename(f"{path}.{n}", f"{path}.{n + 1}")
        os.rename(path, f"{path}.1")


def parse_line(line: str, source: str) -> dict[str, Any] | None:
    """One record line as a JSON object, or None when it is not one we could have written
    (empty, torn by a crash, another shape, longer than a record, nested too deep)."""
    if not line.strip() or len(line) > MAX_LINE_BYTES:
        return None
    try:
        data = loads_json(line, source=source, max_depth=20)
    except (ValueError, InputRefused):
        return None
    return data if isinstance(data, dict) else None


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _write_all(fd: int, data: bytes) -> None:
    # One write() of a small line on O_APPEND lands whole; loop only for the partial-write
    # corner case (a full disk), which then raises.
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except InterruptedError:
            continue
        if written == 0:
            raise OSError(errno.EIO, "short write to the records")
        view = view[written:]
