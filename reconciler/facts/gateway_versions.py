"""Versioned gateway installs on the host: one listing of the prefix (gateway/versions.py).

Read in-process with the spec user's permissions (a root-owned prefix is world-readable), never
following a symlink out of the prefix: a version directory that is a symlink is reported as
such (`kind`), never read through.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any, Literal

from reconciler.core.command import Command, CommandResult
from reconciler.core.host import HostContext
from reconciler.core.probe import Probe
from reconciler.facts.codec import RecordedHost, recorded
from reconciler.frozen import frozen
from reconciler.gateway.paths import home
from reconciler.gateway.versions import MARKER, is_version, prefix_path
from reconciler.spec.model import Spec
from reconciler.system.as_user import acting_account, call_as

TEMP_PREFIXES = (".install-", ".remove-")
EntryKind = Literal["directory", "symlink", "other"]
# A package.json read for its version is small; a bigger one is not ours.
_PACKAGE_JSON_LIMIT = 1 << 20


@recorded
@frozen
class InstalledVersion:
    """One entry under the prefix named like a version, as probed."""

    version: str  # the entry's name
    complete: bool  # our marker is there (written last, after the check)
    package_version: str | None = None  # node_modules/<package>/package.json's "version"
    installed_at: float = 0.0  # the marker's mtime (the directory's without it)
    kind: EntryKind = "directory"
    # The package.json it was installed from (`<version>/package.json`, ours); None: unreadable
    # or recorded before it was probed. Compared with the spec's to plan a reinstall.
    manifest: str | None = None
    uid: int | None = None  # the directory's owner (None: recorded before it was probed)
    engines_node: str | None = None  # the package's `engines.node` (the node it needs)

    @property
    def usable(self) -> bool:
        """Complete, and the package inside is the version its directory is named for."""
        return self.kind == "directory" and self.complete and self.package_version == self.version


@recorded
@frozen
class InstalledVersions:
    """The prefix: whether it exists (and whose it is), its versions, and install leftovers."""

    prefix: Path
    exists: bool
    uid: int | None = None
    versions: tuple[InstalledVersion, ...] = ()
    leftovers: tuple[str, ...] = ()  # `.install-*` / `.remove-*` entries of killed runs
    error: str | None = None  # the prefix could not be listed (not a directory, no access)

    def get(self, version: str) -> InstalledVersion | None:
        return next((v for v in self.versions if v.version == version), None)


def _small_file(path: Path) -> bytes | None:
    """A regular file's bytes (never following a symlink, never blocking, at most the limit)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, _PACKAGE_JSON_LIMIT)
    finally:
        os.close(fd)


def _manifest(path: Path) -> str | None:
    data = _small_file(path)
    try:
        return None if data is None else data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def package_facts(path: Path) -> tuple[str | None, str | None]:
    """(`version`, `engines.node`) of an installed package.json (None where absent)."""
    data = _small_file(path)
    if data is None:
        return None, None
    try:
        doc = json.loads(data)
        version, engines = doc.get("version"), doc.get("engines")
    except (ValueError, AttributeError, RecursionError):
        return None, None
    node = engines.get("node") if isinstance(engines, dict) else None
    return (
        version if isinstance(version, str) else None,
        node if isinstance(node, str) and len(node) < 200 else None,
    )


def list_prefix(prefix: Path, package: str) -> dict[str, Any]:
    """The JSON-able listing of `prefix` (run with the user's permissions)."""
    try:
        info = os.stat(prefix, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return {"exists": False}
    if not stat.S_ISDIR(info.st_mode):
        return {"exists": True, "uid": info.st_uid, "error": "not a directory"}
    try:
        names = sorted(os.listdir(prefix))
    except OSError as exc:
        return {"exists": True, "uid": info.st_uid, "error": exc.strerror or str(exc)}
    versions: list[dict[str, Any]] = []
    leftovers: list[str] = []
    for name in names:
        if name.startswith(TEMP_PREFIXES):
            leftovers.append(name)
            continue
        if not is_version(name):
            continue
        entry = prefix / name
        mode = os.lstat(entry).st_mode
        if not stat.S_ISDIR(mode):
            kind = "symlink" if stat.S_ISLNK(mode) else "other"
            versions.append({"version": name, "complete": False, "kind": kind})
            continue
        try:
            marker = os.stat(entry / MARKER, follow_symlinks=False)
            complete, installed_at = stat.S_ISREG(marker.st_mode), marker.st_mtime
        except OSError:
            complete, installed_at = False, os.lstat(entry).st_mtime
        package_json = entry / "node_modules" / package / "package.json"
        package_version, engines_node = package_facts(package_json)
        versions.append(
            {
                "version": name,
                "complete": complete,
                "package_version": package_version,
                "installed_at": installed_at,
                "manifest": _manifest(entry / "package.json"),
                "uid": os.lstat(entry).st_uid,
                "engines_node": engines_node,
            }
        )
    return {"exists": True, "uid": info.st_uid, "versions": versions, "leftovers": leftovers}


@recorded
@frozen
class InstalledVersionsProbe(Probe[InstalledVersions]):
    """One listing of the prefix: version directories (marker, package version, install time)
    and leftovers of killed installs. In-process, as the spec's user."""

    prefix: Path
    package: str

    def read(self, host: HostContext) -> InstalledVersions:
        found = call_as(acting_account(host), partial(list_prefix, self.prefix, self.package))
        return InstalledVersions(
            prefix=self.prefix,
            exists=bool(found["exists"]),
            uid=found.get("uid"),
            versions=tuple(InstalledVersion(**v) for v in found.get("versions", ())),
            leftovers=tuple(found.get("leftovers", ())),
            error=found.get("error"),
        )

    def answer_from(self, recorded: RecordedHost) -> InstalledVersions | None:
        return (
            InstalledVersions(self.prefix, False) if recorded.known_missing(self.prefix) else None
        )


def versions_probe(spec: Spec, host: HostContext) -> InstalledVersionsProbe:
    """The one listing of the spec's prefix (the install kind plans from it; the unit kind
    reads each release's engines.node in it)."""
    return InstalledVersionsProbe(prefix_path(spec, home(host)), spec.runtime.gateway.package)


@recorded
@frozen
class DiskUsage:
    """Bytes a directory tree takes on disk (None when `du` could not say)."""

    path: Path
    bytes: int | None
    detail: str = ""


@recorded
@frozen
class DiskUsageProbe(Probe[DiskUsage]):
    """`du -s -B1 <path>` (only `reconciler versions` asks: a gateway version is ~50 000 files)."""

    path: Path

    def command(self, host: HostContext) -> Command | None:
        return Command(("du", "-s", "-B1", "--", str(self.path)), timeout_s=60)

    def parse(self, result: CommandResult) -> DiskUsage:
        first = result.stdout.split()[:1]
        if result.ok and first and first[0].isdigit():
            return DiskUsage(self.path, int(first[0]))
        return DiskUsage(self.path, None, result.summary())


def retained(
    installed: Iterable[InstalledVersion], needed: Iterable[str], keep: int
) -> tuple[frozenset[str], tuple[str, ...]]:
    """(kept, pruned): keep every `needed` version (wanted or running) and the `keep` newest
    other usable ones by install time; prune the rest, oldest first."""
    needed_set = frozenset(needed)
    others = sorted(
        (i for i in installed if i.version not in needed_set),
        key=lambda i: (i.usable, i.installed_at, i.version),
        reverse=True,
    )
    usable = [i for i in others if i.usable]
    kept = needed_set | {i.version for i in usable[:keep]}
    pruned = tuple(i.version for i in reversed(others) if i.version not in kept)
    return frozenset(kept), pruned
