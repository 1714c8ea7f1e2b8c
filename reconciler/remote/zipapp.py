"""The agent we ship to a target: a zipapp of this package and what it needs at run time.

What goes in is derived from the installed distribution's own metadata (importlib.metadata):
`reconciler`'s requirements without extras, followed transitively, each shipped as the files its
RECORD lists. Nothing is kept by hand beside pyproject.toml except what the target never needs
(NOT_SHIPPED, each with its reason; a test checks they are still requirements).

Built byte for byte the same from the same installed files (sorted names, fixed timestamps), so
its SHA-256 names it: the target keeps it under that name and reuses it while it is unchanged.
Compiled extensions are left out (the target's Python may be another build): a distribution's
pure modules still go (PyYAML falls back to its Python parser by itself); a package that is only
a compiled module with an `__init__.py` re-exporting it (pyjson5) is left out whole, so that the
target's own copy, if its Python has one, is imported, else the code's pure fallback (json5).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from reconciler.frozen import frozen

if TYPE_CHECKING:
    import importlib.metadata

ROOT = "reconciler"
# Requirements the target never imports, and why (their own requirements are skipped too).
NOT_SHIPPED = {
    "jsonschema": "specs are validated on the admin machine, before anything is sent",
}
_COMPILED = (".so", ".pyd")
_SKIP_SUFFIXES = (".pyc", ".pyo", *_COMPILED)
_EPOCH = (1980, 1, 1, 0, 0, 0)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

# `python3 AGENT.pyz ARGS`: the command line (the timer runs the installed copy so); the agent
# itself is started by the bootstrap (remote/bootstrap.py), never through this.
MAIN = b"""\
from reconciler.agent import timer_main
timer_main()
"""


class AgentBuildError(Exception):
    """The installed distribution does not have what the agent needs (a requirement missing)."""


@frozen
class Agent:
    """The zipapp's bytes, the name the target caches it under, and what it holds."""

    data: bytes
    distributions: tuple[str, ...] = ()  # shipped, besides reconciler itself
    compiled_only: tuple[str, ...] = ()  # top-level packages left out: compiled code only

    @functools.cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_requirements(requires: list[str] | None) -> Iterator[tuple[str, bool]]:
    """Pure: a distribution's `Requires-Dist` lines -> (name, conditional) for those that are
    not extras. `conditional`: the requirement has a marker (platform, Python version)."""
    for line in requires or ():
        requirement, _, marker = line.partition(";")
        if "extra" in marker:
            continue
        match = _NAME.match(requirement.strip())
        if match:
            yield match.group(0), bool(marker.strip())


def shipped_distributions(root: str = ROOT) -> tuple[importlib.metadata.Distribution, ...]:
    """`root`'s run-time requirements, transitively, minus NOT_SHIPPED (installed ones only)."""
    import importlib.metadata

    skip = {_canonical(n) for n in NOT_SHIPPED}
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = list(runtime_requirements(importlib.metadata.requires(root)))
    while todo:
        name, conditional = todo.pop()
        key = _canonical(name)
        if key in seen or key in skip or key == _canonical(root):
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            if conditional:  # its marker excluded it on this machine (e.g. colorama: Windows)
                continue
            raise AgentBuildError(
                f"{root} requires {name}, which is not installed here: reinstall {root}"
            ) from None
        seen[key] = dist
        todo.extend(runtime_requirements(dist.requires))
    return tuple(seen[k] for k in sorted(seen))


def _distribution_files(
    dist: importlib.metadata.Distribution,
) -> tuple[list[tuple[str, Path]], list[str]]:
    """The files a distribution installed that the agent ships, and its compiled-only packages."""
    by_top: dict[str, list[PurePosixPath]] = {}
    for file in dist.files or ():
        parts = PurePosixPath(file).parts
        if ".." in parts or parts[0].endswith((".dist-info", ".egg-info", ".data")):
            continue  # scripts, metadata: not importable code
        by_top.setdefault(parts[0], []).append(PurePosixPath(file))
    files: list[tuple[str, Path]] = []
    compiled_only: list[str] = []
    for top, paths in sorted(by_top.items()):
        python = [p for p in paths if p.suffix == ".py" and p.name != "__init__.py"]
        if len(paths) > 1 and any(p.suffix in _COMPILED for p in paths) and not python:
            compiled_only.append(top)
            continue
        for path in paths:
            if "__pycache__" in path.parts or path.suffix in _SKIP_SUFFIXES:
                continue
            files.append((path.as_posix(), Path(str(dist.locate_file(path)))))
    return files, compiled_only


def _own_files() -> list[tuple[str, Path]]:
    """This package's files, from where it is imported (an editable install has no RECORD
    listing them)."""
    root = Path(__file__).resolve().parents[1]
    files = []
    # followlinks: reconciler/schemas is a link to the repository's schemas/ in a checkout.
    for folder, dirs, names in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for file_name in names:
            path = Path(folder, file_name)
            if path.suffix not in _SKIP_SUFFIXES:
                files.append((f"{ROOT}/{path.relative_to(root).as_posix()}", path))
    return files


_BUILT: dict[str, Agent] = {}
_BUILDING = threading.Lock()


def build_agent() -> Agent:
    """The agent, built once per process. The hosts of a fleet ask for it at once, each from its
    own thread: one builds it, the others wait for that (a plain cache would let each of them
    build it again, one after the other under the interpreter's lock)."""
    with _BUILDING:
        if ROOT not in _BUILT:
            _BUILT[ROOT] = _kept_or_zipped()
        return _BUILT[ROOT]


@frozen
class _Contents:
    """What goes into the agent: (name in the zip, file; None for __main__.py) and metadata."""

    entries: tuple[tuple[str, Path | None], ...]
    distributions: tuple[str, ...]
    compiled_only: tuple[str, ...]

    def manifest_key(self) -> str:
        """Names, sizes and modification times of every file: a changed install, another key.
        (Stat-ing 200 files costs a few milliseconds; zipping them, about 0.1 s of CPU.)"""
        digest = hashlib.sha256(repr((self.distributions, self.compiled_only)).encode())
        for arcname, path in self.entries:
            info = None if path is None else path.stat()
            stamp = b"" if info is None else f"{info.st_size}:{info.st_mtime_ns}".encode()
            digest.update(arcname.encode() + b"\0" + stamp + b"\n")
        digest.update(MAIN)
        return digest.hexdigest()[:32]


def _contents(folder: Path | None = None) -> _Contents:
    """What goes in: this package's files (walked every time) and its dependencies' (from
    their metadata, or from `folder`'s record of it: _dependencies)."""
    deps, shipped, compiled_only = _dependencies(folder)
    entries: list[tuple[str, Path | None]] = [("__main__.py", None), *_own_files(), *deps]
    return _Contents(tuple(sorted(dict(entries).items())), shipped, compiled_only)


def _dependencies(
    folder: Path | None,
) -> tuple[list[tuple[str, Path]], tuple[str, ...], tuple[str, ...]]:
    """The shipped distributions' files, their names, and the compiled-only packages left out.

    Reading them from the installed metadata (importlib.metadata, which parses every
    distribution's METADATA and RECORD with the email and csv modules) cost a remote plan more
    CPU on the admin's side than anything but the spec and the plan. So the answer is kept in
    `folder` (the private agent-build cache) with the modification time of every folder on
    sys.path: installing, upgrading or removing a distribution adds or removes its .dist-info
    folder in one of them, which changes that folder's time, and the answer is read again.
    Each shipped file's own size and time are still checked on every run (manifest_key)."""
    record = None if folder is None else folder / DEPENDENCIES_RECORD
    stamp = [[entry, _mtime_ns(entry)] for entry in sys.path]
    if record is not None:
        try:
            kept = json.loads(record.read_text(encoding="utf-8"))
            if kept["stamp"] == stamp:
                return (
                    [(str(arcname), Path(path)) for arcname, path in kept["files"]],
                    tuple(map(str, kept["distributions"])),
                    tuple(map(str, kept["compiled_only"])),
                )
        except (OSError, ValueError, KeyError, TypeError):
            pass  # none kept yet, or not ours to trust: read the metadata
    files: list[tuple[str, Path]] = []
    shipped, compiled_only = [], []
    for dist in shipped_distributions():
        found, compiled = _distribution_files(dist)
        files.extend(found)
        compiled_only.extend(compiled)
        shipped.append(dist.metadata["Name"])
    answer = (files, tuple(sorted(shipped)), tuple(sorted(compiled_only)))
    if record is not None:
        document = {
            "stamp": stamp,
            "files": [[arcname, str(path)] for arcname, path in files],
            "distributions": answer[1],
            "compiled_only": answer[2],
        }
        fd, temp = tempfile.mkstemp(dir=record.parent, prefix=".deps-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle)
        os.replace(temp, record)
    return answer


def _mtime_ns(entry: str) -> int | None:
    try:
        return os.stat(entry or ".").st_mtime_ns
    except OSError:
        return None


# The last few builds are kept (one per installed version in use), the rest removed.
_KEEP_BUILDS = 4
# Beside them, what the shipped distributions install (_dependencies).
DEPENDENCIES_RECORD = "dependencies.json"


def _kept_or_zipped() -> Agent:
    """The agent from the admin's own cache (`~/.cache/reconciler/agent-build/`) when the
    installed files are unchanged since it was zipped, else zipped (and kept)."""
    from reconciler.shell.private_folder import own_private_folder, user_cache_home

    folder = Path(user_cache_home(), "reconciler", "agent-build")
    if not own_private_folder(str(folder)):
        return _zip(_contents())
    contents = _contents(folder)
    key = contents.manifest_key()
    for kept in folder.glob(f"{key}-*.pyz"):
        data = kept.read_bytes()
        # Named by its own SHA-256: a damaged or half-written file is never shipped.
        if kept.name == f"{key}-{hashlib.sha256(data).hexdigest()}.pyz":
            os.utime(kept)  # the most recently used are the ones kept
            return Agent(data, contents.distributions, contents.compiled_only)
        kept.unlink(missing_ok=True)
    agent = _zip(contents)
    # A cache checked by its hash on every read: no fsync, a crash costs one more zip.
    fd, temp = tempfile.mkstemp(dir=folder, prefix=".build-", suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(agent.data)
    os.replace(temp, folder / f"{key}-{agent.sha256}.pyz")
    builds = sorted(folder.glob("*.pyz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in builds[_KEEP_BUILDS:]:
        old.unlink(missing_ok=True)
    return agent


def zip_agent() -> Agent:
    """Zip this package and its run-time dependencies' pure-Python files (deterministic)."""
    return _zip(_contents())


def _zip(contents: _Contents) -> Agent:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for arcname, path in contents.entries:
            info = zipfile.ZipInfo(arcname, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, MAIN if path is None else path.read_bytes())
    return Agent(buffer.getvalue(), contents.distributions, contents.compiled_only)
