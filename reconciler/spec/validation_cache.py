"""Remember the validated data of spec texts that passed, so a timer run skips validation.

A timer plans the same committed spec every few minutes, and reading a spec costs a plan more
than anything but its probes: the YAML parser with positions, jsonschema (the slowest import of
the CLI) and the semantic rules. When exactly these bytes passed before, under the same
reconciler code and schema, the result is the same: so the validated plain data is kept and
the next run only converts it to the typed `Spec` (which is not cached). This holds because
parsing, the schema and the semantic rules read nothing but the spec's text: a rule that looked at
the host would have to run on every load, outside the cache.

Key: sha256 over the code stamp (version, plus size and mtime of the modules that parse and
check a spec, so a development checkout never reads a stale entry), the schema text and the
spec's bytes. Only passes are stored: a failing spec is validated each time, for its messages.

Where: `$XDG_CACHE_HOME/reconciler/specs/<key>.json` (default `~/.cache`), directories 0700,
files 0600, written atomically. An entry is believed only when the directory and the file
belong to us and nobody else can write to the directory: another user must not be able to
plant data that never passed validation. Any problem reading or writing is a miss, never an
error (the cache may vanish at any time). `RECONCILER_NO_CACHE=1` turns it off.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler import __version__

# Only a run that changes the host stores entries (apply, the timer: `allow_writes`). plan,
# probe, validate and dry runs read the cache but leave the user's home exactly as it was (the
# dry-run law: tests/e2e test_dry_run_changes_nothing compares every path under the home).
_writes_allowed = False


def allow_writes(allowed: bool = True) -> None:
    """Let this process store entries (the apply use case calls it before loading the spec)."""
    global _writes_allowed
    _writes_allowed = allowed


#: entries kept; the oldest are removed when a new one is stored
MAX_ENTRIES = 32
DISABLE_ENV = "RECONCILER_NO_CACHE"

_PACKAGE = Path(__file__).resolve().parent.parent
#: what turns a spec's bytes into validated data: a change to any of these is a new key
_STAMPED = ("spec", "semver.py")


def cache_dir(env: Mapping[str, str] | None = None) -> Path | None:
    """The cache directory, or None when there is none (disabled, or no usable HOME)."""
    env = os.environ if env is None else env
    if env.get(DISABLE_ENV):
        return None
    base = env.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative value is invalid, ignore it
        home = env.get("HOME", "")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    return Path(base) / "reconciler" / "specs"


def code_stamp() -> str | None:
    """The reconciler version, plus size and mtime of the code that parses and checks a spec.

    None when that code is not in files of its own (the zipapp shipped to remote targets): then
    nothing tells one build from the next, and the cache is not used.
    """
    parts = [__version__]
    for name in _STAMPED:
        path = _PACKAGE / name
        # Sections keep their rules and models in sub-packages (spec/sections/<name>/).
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        if not files:
            return None
        for file in files:
            try:
                st = os.stat(file)
            except OSError:
                return None
            parts.append(f"{file.relative_to(_PACKAGE)}:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join(parts)


def cache_key(spec_bytes: bytes, schema_text: str, stamp: str) -> str:
    """The key of one (reconciler code, schema, spec bytes) combination."""
    digest = hashlib.sha256()
    for part in (stamp.encode(), schema_text.encode(), spec_bytes):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _trusted_dir(st: os.stat_result) -> bool:
    return (
        stat.S_ISDIR(st.st_mode)
        and st.st_uid == os.geteuid()
        and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def lookup(key: str, directory: Path | None) -> dict[str, Any] | None:
    """The validated data stored under `key`, or None (absent, untrusted or unreadable)."""
    if directory is None:
        return None
    try:
        if not _trusted_dir(os.stat(directory)):
            return None
        fd = os.open(directory / f"{key}.json", os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as stream:
            st = os.fstat(stream.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                return None
            data = json.loads(stream.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def store(key: str, directory: Path | None, data: Mapping[str, Any]) -> None:
    """Keep `data` under `key` (best effort; data that JSON would change is not kept)."""
    if directory is None or not _writes_allowed:
        return
    try:
        text = json.dumps(data, ensure_ascii=False, sort_keys=True)
        if json.loads(text) != data:  # e.g. non-string keys: a hit must give the same data
            return
    except (TypeError, ValueError):
        return
    with contextlib.suppress(OSError):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _trusted_dir(os.stat(directory)):
            return
        import tempfile  # only when storing: a cache hit does not pay for it

        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as stream:  # mkstemp: 0600
                stream.write(text)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(tmp, directory / f"{key}.json")
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _prune(directory)


def _prune(directory: Path) -> None:
    entries = []
    for entry in os.scandir(directory):
        if entry.name.startswith(".tmp-"):  # another process's write in progress
            continue
        with contextlib.suppress(OSError):
            entries.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.path))
    for _, path in sorted(entries)[: max(0, len(entries) - MAX_ENTRIES)]:
        with contextlib.suppress(OSError):
            os.unlink(path)
