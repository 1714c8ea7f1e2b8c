"""What a path is, as messages word it (issue 11 #13: "is a other")."""

from __future__ import annotations

import os
import typing
from pathlib import Path

from reconciler.facts.files import PathKind, PathState, read_path


def test_every_kind_of_path_reads_as_english(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to("file")
    found = {name: read_path(tmp_path / name).described for name in ("fifo", "file", "link", ".")}
    assert found == {
        "fifo": "a special file (a FIFO, socket or device)",
        "file": "a regular file",
        "link": "a symbolic link",
        ".": "a directory",
    }
    for kind in typing.get_args(PathKind):
        described = PathState(tmp_path, kind).described
        assert described and " a other" not in f" {described}"
