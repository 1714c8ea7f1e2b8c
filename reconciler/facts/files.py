"""Paths as the kinds see them: what is there (lstat, never following a link), and file text.

Read in-process, or, when we are root, in a child that dropped to the spec's user
(reconciler.system.as_user): the user controls these paths, so a link they plant must never make
root read (and copy into a plan or snapshot) a file only root may read. The text of a file may
hold secrets (the gateway config keeps tokens and passwords), so it is kept out of `repr` and is
only ever handed to a kind's pure parser.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import stat
from collections.abc import Callable
from dataclasses import field, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

from reconciler.bounded import read_bounded
from reconciler.core.host import HostContext
from reconciler.core.probe import Probe
from reconciler.core.secrets import learn_secrets
from reconciler.facts.codec import RecordedHost, Redaction, recorded
from reconciler.frozen import frozen
from reconciler.system.as_user import acting_account, call_as, in_child

PathKind = Literal["missing", "directory", "file", "symlink", "other"]

# What a path is, as a message says it ("... is a symbolic link, not a regular file").
DESCRIBED: dict[str, str] = {
    "missing": "missing",
    "directory": "a directory",
    "file": "a regular file",
    "symlink": "a symbolic link",
    "other": "a special file (a FIFO, socket or device)",
}


MAX_FILE_BYTES = 64 * 1024 * 1024  # a gateway config of 20 MB must still plan
# A file the runner replaces keeps its previous version beside it (systemd ignores this suffix).
BACKUP_SUFFIX = ".reconciler-backup"


def backup_path(path: Path) -> Path:
    """Where the previous version of `path` is kept (the runner writes it, plans name it)."""
    return path.with_name(path.name + BACKUP_SUFFIX)


@recorded
@frozen
class PathState:
    """One path: its type (a symlink is reported as such, not followed), mode, owner, times."""

    path: Path
    kind: PathKind
    mode: int | None = None  # permission bits only
    uid: int | None = None
    owner: str | None = None  # user name of uid, or the uid as text when it has no name
    mtime: float | None = None
    ctime: float | None = None
    text: str | None = field(default=None, repr=False)  # content, when asked for and readable
    error: str | None = None  # why the content could not be read

    @property
    def exists(self) -> bool:
        return self.kind != "missing"

    @property
    def described(self) -> str:
        """What the path is, worded for a message: `a directory`, `a symbolic link` ..."""
        return DESCRIBED[self.kind]

    @property
    def changed_at(self) -> float | None:
        """The later of mtime and ctime: when the file last changed, whoever set its mtime."""
        if self.mtime is None or self.ctime is None:
            return self.mtime
        return max(self.mtime, self.ctime)

    def redacted(self, redaction: Redaction) -> PathState:
        """In a snapshot: only what the rule for this file keeps of its text (else nothing)."""
        if self.text is None:
            return self
        text, error = redaction.file_text(self.path, self.text)
        return replace(self, text=text, error=error)


def _owner_name(uid: int) -> str:
    if in_child():
        return str(uid)  # named by the parent (`_decode`)
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _read_resolved(path: Path) -> PathState:
    return read_path(Path(os.path.realpath(path)))


def _look_for_key(path: Path, key: str) -> PathState:
    # Only whether the key has a value leaves the child acting as the user, not the text.
    found = read_path(path, content=True)
    present = found.text is not None and has_value(found.text, key)
    return replace(found, text=None, error="present" if present else None)


def read_path(path: Path, *, content: bool = False) -> PathState:
    """lstat `path`; with `content`, also read a regular file's text (UTF-8)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return PathState(path, "missing")
    except NotADirectoryError:  # a parent is a file: nothing can be here
        return PathState(path, "missing")
    kind: PathKind
    if stat.S_ISLNK(info.st_mode):
        kind = "symlink"
    elif stat.S_ISDIR(info.st_mode):
        kind = "directory"
    elif stat.S_ISREG(info.st_mode):
        kind = "file"
    else:
        kind = "other"
    text: str | None = None
    error: str | None = None
    if content and kind == "file":
        try:
            # Swapped for a FIFO or device since the lstat, or huge: refused, never waited on.
            text = read_bounded(path, MAX_FILE_BYTES, follow=False).decode("utf-8")
            # env files, configs, units: hidden wherever they show later (learnt in a child
            # acting as the user too: reconciler.system.as_user hands what it learnt back)
            learn_secrets(text)
        except UnicodeDecodeError as exc:
            error = f"not UTF-8 text (byte {exc.start})"
        except OSError as exc:
            error = exc.strerror or str(exc)
    return PathState(
        path,
        kind,
        mode=stat.S_IMODE(info.st_mode),
        uid=info.st_uid,
        owner=_owner_name(info.st_uid),
        mtime=info.st_mtime,
        ctime=info.st_ctime,
        text=text,
        error=error,
    )


def _encode(state: PathState) -> dict[str, Any]:
    return dataclasses.asdict(state) | {"path": str(state.path)}


def _decode(data: dict[str, Any]) -> PathState:
    uid = data.get("uid")
    named = {"owner": _owner_name(uid)} if isinstance(uid, int) else {}
    return PathState(**(data | {"path": Path(data["path"])} | named))


def read_as_user(host: HostContext, read: Callable[[], PathState]) -> PathState:
    """`read()` with the spec user's permissions when we are root (see the module docstring)."""
    # A partial, never a lambda: an admin's helper gets the work pickled (system/as_user.py).
    return _decode(call_as(acting_account(host), partial(_encode_read, read)))


def _encode_read(read: Callable[[], PathState]) -> dict[str, Any]:
    return _encode(read())


@recorded
@frozen
class PathProbe(Probe[PathState]):
    """A path's state, and its text when `content` is set (read with the user's permissions)."""

    path: Path
    content: bool = False

    def read(self, host: HostContext) -> PathState:
        return read_as_user(host, partial(read_path, self.path, content=self.content))

    def answer_from(self, recorded: RecordedHost) -> PathState | None:
        """The same path probed with(out) content, or "missing" when the snapshot shows it."""
        other = recorded.fact(PathProbe(self.path, not self.content))
        if isinstance(other, PathState):
            if not self.content:
                return replace(other, text=None, error=None)
            if other.kind != "file":
                return other
        return PathState(self.path, "missing") if recorded.known_missing(self.path) else None


@recorded
@frozen
class RealPathProbe(Probe[PathState]):
    """The file a path finally points to (symlinks resolved), e.g. an npm bin shim's target."""

    path: Path

    def read(self, host: HostContext) -> PathState:
        return read_as_user(host, partial(_read_resolved, self.path))


@recorded
@frozen
class DirectoryListing:
    """Entries of a directory with the state of each (symlinks not followed)."""

    path: Path
    exists: bool
    entries: tuple[PathState, ...] = ()

    def redacted(self, redaction: Redaction) -> DirectoryListing:
        return replace(self, entries=tuple(e.redacted(redaction) for e in self.entries))


@recorded
@frozen
class DirectoryProbe(Probe[DirectoryListing]):
    """The entries of `path` whose names start with one of `prefixes` and end with `suffix`.

    With `content`, regular files (and the files symlinks point to) are read as text.
    """

    path: Path
    prefixes: tuple[str, ...]
    suffix: str
    content: bool = False

    def read(self, host: HostContext) -> DirectoryListing:
        found = call_as(acting_account(host), self._listing)
        return DirectoryListing(
            self.path, bool(found["exists"]), tuple(_decode(e) for e in found["entries"])
        )

    def _listing(self) -> dict[str, Any]:
        try:
            names = sorted(os.listdir(self.path))
        except (FileNotFoundError, NotADirectoryError):
            return {"exists": False, "entries": []}
        entries: list[PathState] = []
        for name in names:
            if not name.endswith(self.suffix) or not name.startswith(self.prefixes):
                continue
            state = read_path(self.path / name, content=self.content)
            if state.kind == "symlink" and self.content:
                target = read_path(Path(os.path.realpath(self.path / name)), content=True)
                state = PathState(
                    state.path,
                    "symlink",
                    state.mode,
                    state.uid,
                    state.owner,
                    state.mtime,
                    state.ctime,
                    target.text,
                    target.error,
                )
            entries.append(state)
        return {"exists": True, "entries": [_encode(e) for e in entries]}

    def answer_from(self, recorded: RecordedHost) -> DirectoryListing | None:
        return DirectoryListing(self.path, False) if recorded.known_missing(self.path) else None


def has_value(text: str, key: str) -> bool:
    """Pure: does `text` (`KEY=value` lines, as an EnvironmentFile) give `key` a non-empty value?"""
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() == key and value.strip():
            return True
    return False


@recorded
@frozen
class SecretEnvState:
    """An env file as far as a plan may know it: type, mode, owner, times, key present."""

    file: PathState
    has_key: bool


@recorded
@frozen
class SecretEnvProbe(Probe[SecretEnvState]):
    """Reads the file (with the user's permissions) and keeps only whether `key` has a value."""

    path: Path
    key: str

    def read(self, host: HostContext) -> SecretEnvState:
        looked = read_as_user(host, partial(_look_for_key, self.path, self.key))
        # The fact must not carry the secret (nor our marker) any further.
        return SecretEnvState(replace(looked, error=None), looked.error == "present")

    def answer_from(self, recorded: RecordedHost) -> SecretEnvState | None:
        if recorded.known_missing(self.path):
            return SecretEnvState(PathState(self.path, "missing"), False)
        return None


@recorded
@frozen
class ExposedEntries:
    """What under a directory group or other users may access (any 0o077 bit), each entry
    named: modes and owners only, never content."""

    path: Path
    exists: bool
    entries: tuple[PathState, ...] = ()
    more: bool = False  # the walk stopped at its limit: there may be others


@recorded
@frozen
class ExposedEntriesProbe(Probe[ExposedEntries]):
    """Walk `path` (with the user's permissions, never following a link, at most `limit`
    entries) for files and folders whose mode lets group or others in (a credentials folder
    whose files the gateway or the user left 0644)."""

    path: Path
    limit: int = 10_000

    def read(self, host: HostContext) -> ExposedEntries:
        found = call_as(acting_account(host), self._walk)
        return ExposedEntries(
            self.path,
            bool(found["exists"]),
            tuple(_decode(e) for e in found["entries"]),
            bool(found["more"]),
        )

    def _walk(self) -> dict[str, Any]:
        if not os.path.isdir(self.path) or os.path.islink(self.path):
            return {"exists": False, "entries": [], "more": False}
        exposed: list[PathState] = []
        pending, seen = [self.path], 0
        while pending and seen < self.limit:
            folder = pending.pop()
            try:
                with os.scandir(folder) as scan:
                    names = sorted(entry.name for entry in scan)
            except OSError:
                continue  # gone meanwhile, or not ours to read: nothing to name there
            for name in names:
                seen += 1
                state = read_path(folder / name)
                if state.kind == "directory":
                    pending.append(folder / name)
                if state.kind != "symlink" and (state.mode or 0) & 0o077:
                    exposed.append(state)
        exposed.sort(key=lambda e: str(e.path))
        return {"exists": True, "entries": [_encode(e) for e in exposed], "more": bool(pending)}

    def answer_from(self, recorded: RecordedHost) -> ExposedEntries | None:
        return ExposedEntries(self.path, False) if recorded.known_missing(self.path) else None


@recorded
@frozen
class ChainLink:
    """One existing component of a path, from `/` down: what it is, whose, its permission bits."""

    path: str
    kind: PathKind
    uid: int | None = None
    mode: int | None = None

    def root_only(self) -> bool:
        """A real directory only root can change: owned by root, no group or other write (a
        sticky world-writable /tmp still lets anyone create names in it)."""
        return self.kind == "directory" and self.uid == 0 and (self.mode or 0) & 0o022 == 0


@recorded
@frozen
class PathChain:
    """The existing components of a path (lstat, never followed), `/` first, ending with the
    path itself when it exists: whether root may act there without another account being able
    to move or replace what root creates or runs (systemd's chase() asks the same)."""

    links: tuple[ChainLink, ...]

    def not_root_only(self) -> ChainLink | None:
        """The first component someone other than root can change, or None."""
        return next((link for link in self.links if not link.root_only()), None)


@recorded
@frozen
class PathChainProbe(Probe[PathChain]):
    """lstat of each existing component of `path`, from `/` down (in-process: lstat reads
    nothing of a file and follows no link)."""

    path: Path

    def read(self, host: HostContext) -> PathChain:
        return path_chain(self.path)


def path_chain(path: Path) -> PathChain:
    """The chain of `path` as it is now (also what the runner checks again before it acts)."""
    links: list[ChainLink] = []
    for part in (*reversed(path.parents), path):
        try:
            info = os.lstat(part)
        except (FileNotFoundError, NotADirectoryError):
            break
        mode = info.st_mode
        kind: PathKind = (
            "symlink"
            if stat.S_ISLNK(mode)
            else "directory"
            if stat.S_ISDIR(mode)
            else "file"
            if stat.S_ISREG(mode)
            else "other"
        )
        links.append(ChainLink(str(part), kind, info.st_uid, stat.S_IMODE(mode)))
        if kind != "directory":
            break
    return PathChain(tuple(links))
