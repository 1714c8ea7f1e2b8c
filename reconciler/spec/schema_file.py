"""Where the spec's JSON Schema is, and its text: no parsing, so reading a cached spec is cheap."""

from __future__ import annotations

import functools
from pathlib import Path

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "spec.schema.json"


@functools.cache
def schema_text() -> str:
    """The schema file's text, exactly as shipped."""
    try:
        return SCHEMA_PATH.read_text(encoding="utf-8")
    except OSError:
        # In the zipapp shipped to remote targets there is no file on disk: read it from the
        # archive (importlib.resources costs an import, so only here).
        from importlib import resources

        package = resources.files("reconciler")
        return package.joinpath("schemas/spec.schema.json").read_text(encoding="utf-8")
