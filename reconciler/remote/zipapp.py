"""The agent we ship to a target: a zipapp of this package and its pure-Python dependencies.

Built byte for byte the same from the same installed files (sorted names, fixed timestamps), so
its SHA-256 names it: the target keeps it under that name and reuses it while it is unchanged.
Compiled extensions are left out (the target's Python may be another build); every dependency the
agent imports has a pure-Python path (PyYAML falls back to its Python parser by itself).
jsonschema is not shipped: specs are validated here, before anything is sent.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

# What the agent imports. deepdiff and its helpers are left out on purpose: planning happens on
# the admin machine; the target only probes and runs a reviewed plan.
# nodesemver: the spec's semantic rules check runtime.node with it (pure Python).
PACKAGES = ("reconciler", "yaml", "sh", "click", "json5", "nodesemver")
_SKIP_SUFFIXES = (".pyc", ".pyo", ".so", ".pyd")
_EPOCH = (1980, 1, 1, 0, 0, 0)

MAIN = b"""\
import sys
from reconciler.agent import main
sys.exit(main())
"""


@dataclass(frozen=True)
class Agent:
    """The zipapp's bytes and the name the target caches it under."""

    data: bytes

    @functools.cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _package_files(name: str) -> list[tuple[str, Path]]:
    module = importlib.import_module(name)
    origin = Path(module.__file__ or "")
    if origin.name != "__init__.py":  # a single-file module
        return [(origin.name, origin)]
    root = origin.parent
    files = []
    # followlinks: reconciler/schemas is a link to the repository's schemas/ in a checkout.
    for folder, dirs, names in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for file_name in names:
            path = Path(folder, file_name)
            if path.suffix not in _SKIP_SUFFIXES:
                files.append((f"{name}/{path.relative_to(root).as_posix()}", path))
    return files


@functools.lru_cache(maxsize=1)
def build_agent() -> Agent:
    """Zip this package and its pure-Python dependencies (deterministic bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        entries = [("__main__.py", None)] + [f for n in PACKAGES for f in _package_files(n)]
        for arcname, path in sorted(entries, key=lambda e: e[0]):
            info = zipfile.ZipInfo(arcname, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, MAIN if path is None else path.read_bytes())
    return Agent(buffer.getvalue())
