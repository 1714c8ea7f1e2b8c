"""A machine that refuses to be read: for proving that planning is pure."""

from __future__ import annotations

import builtins
import contextlib
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest


class HostRead(AssertionError):
    """Planning touched the machine."""


@contextlib.contextmanager
def sealed_machine(allowed: Iterable[Path] = ()) -> Iterator[None]:
    """Every file, directory, PATH and process access raises, except reading `allowed` files."""
    permitted = {str(p) for p in allowed}
    # The tool's own files (its interpreter, libraries, schemas) are not the host's state.
    own = tuple(
        {sys.prefix, sys.base_prefix, str(Path(__file__).resolve().parents[1] / "reconciler")}
    )
    own += (str(Path(__file__).resolve().parents[1] / "schemas"),)
    # The tool's own validation cache (spec/validation_cache.py): it skips re-checking a spec,
    # it says nothing about the host.
    own += tuple(
        os.path.join(os.environ[k], "reconciler") for k in ("XDG_CACHE_HOME",) if k in os.environ
    )

    def allowed_path(file: Any) -> bool:
        if isinstance(file, int):
            return True
        name = os.fspath(file)
        return name in permitted or name in own or name.startswith(tuple(p + "/" for p in own))

    def refuse(what: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            raise HostRead(f"planning read the host: {what}{args[:2]!r}")

        return call

    real_open, real_io_open = builtins.open, io.open
    real_stat, real_lstat, real_access = os.stat, os.lstat, os.access

    def guarded(real: Any, what: str) -> Any:
        def call(file: Any, *args: Any, **kwargs: Any) -> Any:
            if allowed_path(file):
                return real(file, *args, **kwargs)
            raise HostRead(f"planning read the host: {what}({file!r})")

        return call

    # As root, an allowed file is reached one component at a time (bounded.py's walk: O_PATH
    # descriptors, which read nothing, then the file itself from its folder's descriptor).
    steps = {part for p in permitted for part in Path(p).parts} | {".", "..", "/"}

    def guarded_open(file: Any, flags: int, *args: Any, **kwargs: Any) -> Any:
        walking = flags & os.O_PATH or kwargs.get("dir_fd") is not None
        if allowed_path(file) or (walking and os.fspath(file) in steps):
            return real_os_open(file, flags, *args, **kwargs)
        raise HostRead(f"planning read the host: os.open({file!r})")

    real_os_open = os.open

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(builtins, "open", guarded(real_open, "open"))
        mp.setattr(io, "open", guarded(real_io_open, "open"))
        mp.setattr(os, "stat", guarded(real_stat, "os.stat"))
        mp.setattr(os, "lstat", guarded(real_lstat, "os.lstat"))
        mp.setattr(os, "access", guarded(real_access, "os.access"))
        mp.setattr(os, "listdir", guarded(os.listdir, "os.listdir"))
        mp.setattr(os, "scandir", guarded(os.scandir, "os.scandir"))
        mp.setattr(os, "open", guarded_open)
        for name in ("readlink",):
            mp.setattr(os, name, refuse(f"os.{name}"))
        for name in ("fork", "execv", "execve", "posix_spawn", "posix_spawnp", "system"):
            mp.setattr(os, name, refuse(f"os.{name}"))
        mp.setattr(shutil, "which", refuse("shutil.which"))
        mp.setattr(subprocess, "Popen", refuse("subprocess.Popen"))
        mp.setattr(subprocess, "run", refuse("subprocess.run"))
        yield
