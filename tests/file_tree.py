"""What a folder holds, byte for byte: the tests' way of saying "everything came back"."""

from __future__ import annotations

import os
from pathlib import Path


def file_tree(root: Path) -> dict[str, tuple[int, bytes | str]]:
    """Every entry under root: its mode and bytes (a symlink: its target; a directory: "dir")."""
    out: dict[str, tuple[int, bytes | str]] = {}
    for path in sorted(root.rglob("*")):
        mode = path.lstat().st_mode
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = (mode, os.readlink(path))
        elif path.is_file():
            out[key] = (mode, path.read_bytes())
        else:
            out[key] = (mode, "dir")
    return out
