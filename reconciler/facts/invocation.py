"""How the reconciler was invoked: the interpreter and the spec's absolute path, read at plan
time (in-process) so that the timers' units can name what to run without the planner reading
anything. Shared by the reconcile timer and the backup timer (equal probes run once).

Run from the agent shipped over SSH (a zipapp in a cache folder, the spec in a temporary one),
the answer is where the agent installs both for the timer before an apply (remote/install.py):
the zipapp at a versioned path and the spec, in the spec user's data folder (`timer_paths`). So
the timer never names a temporary path, and the timer's own run (that same zipapp, that same
spec) reports the same invocation: its plan is the one the admin saw.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import tempfile
from dataclasses import replace
from functools import partial
from pathlib import Path

from reconciler.core.host import HostContext
from reconciler.core.probe import Probe
from reconciler.facts.codec import RecordedHost, recorded
from reconciler.frozen import frozen
from reconciler.system.as_user import acting_account, call_as


@recorded
@frozen
class Invocation:
    """How the timer will call us: interpreter and absolute paths, read at plan time."""

    python: str
    spec: Path | None  # None: the spec did not come from a file
    clone: Path | None  # the git source's clone, when the spec has one
    entry_point: str | None = None  # the `reconciler` script installed beside `python`
    scratch: str | None = None  # why `python` is a scratch install ("inside the git work tree X")
    # Why the spec's user could not run the program or read the spec, checked with the user's
    # own permissions (None: they can, or we are that user).
    user_cannot: str | None = None
    zipapp: str | None = None  # the agent installed for the timer: `python ZIPAPP apply ...`


@recorded
@frozen
class InvocationProbe(Probe[Invocation]):
    """`sys.executable` and the resolved spec and clone paths (in-process)."""

    spec_path: Path | None
    clone: Path | None

    def read(self, host: HostContext) -> Invocation:
        # sys.executable is kept as is, not resolved: a venv's bin/python is a symlink to the
        # system interpreter, and only the link's path makes `-m reconciler` find the venv.
        shipped = running_zipapp()
        # With reconcile.source the timer applies the clone's spec: the plan says whether the
        # spec applied now lies in it (reconcile_timer.exec_argv), as for any install.
        if shipped is not None and host.user is not None and self.clone is None:
            app, installed = timer_paths(host.user.home, zipapp_name(shipped))
            return Invocation(python=sys.executable, spec=installed, clone=None, zipapp=str(app))
        script = Path(sys.executable).parent / "reconciler"
        entry = str(script) if os.access(script, os.X_OK) and script.is_file() else None
        spec = self.spec_path.resolve() if self.spec_path is not None else None
        clone = self.clone.resolve() if self.clone is not None else None
        # The timer runs as the spec's user: ask the kernel with the user's permissions (root
        # passes every check; a venv whose interpreter lies under /root does not for the user).
        needed = [(entry, os.R_OK | os.X_OK, "run")] if entry is not None else []
        needed.append((sys.executable, os.X_OK, "run"))  # the script's interpreter, too
        needed += [(str(p), os.R_OK, "read") for p in (spec, clone) if p is not None]
        cannot = call_as(acting_account(host), partial(_first_denied, needed))
        return Invocation(
            python=sys.executable,
            spec=spec,
            clone=clone,
            entry_point=entry,
            scratch=scratch_location(Path(sys.executable)) if sys.executable else None,
            user_cannot=cannot,
        )

    def answer_from(self, recorded: RecordedHost) -> Invocation | None:
        """For another spec path: the recorded interpreter, the paths joined to where `probe`
        ran (as `resolve()` would, without reading this disk)."""
        known = recorded.facts_of(Invocation)
        if known and known[0].zipapp is not None:
            return known[0]  # installed paths on the target, whatever the spec's name here
        cwd = recorded.working_directory
        if not known or cwd is None:
            return None

        def absolute(path: Path | None) -> Path | None:
            return None if path is None else Path(os.path.normpath(cwd / path))

        return replace(known[0], spec=absolute(self.spec_path), clone=absolute(self.clone))


def _first_denied(needed: list[tuple[str, int, str]]) -> str | None:
    """`cannot run X` / `cannot read X` for the first path we may not use, or None."""
    for path, mode, verb in needed:
        if not os.access(path, mode):
            return f"cannot {verb} {path}"
    return None


# Where the temporary directories are (tmpfs or cleaned at boot on most systems).
TEMPORARY = ("/tmp", "/var/tmp", "/dev/shm")


def scratch_location(python: Path) -> str | None:
    """Why an interpreter at `python` is a scratch install (in a temporary directory or a git work
    tree), or None. Its directory is resolved (a symlinked /tmp counts), the interpreter itself
    is not (a venv's bin/python links to the system's)."""
    where = python.parent.resolve()
    for temp in dict.fromkeys((*TEMPORARY, tempfile.gettempdir())):
        if where.is_relative_to(Path(temp).resolve()):
            return f"inside the temporary directory {temp}"
    for folder in (where, *where.parents):
        if (folder / ".git").exists():
            return f"inside the git work tree {folder}"
    return None


# The zipapp's own name inside the folder the bootstrap extracts it into (remote/bootstrap.py).
SHIPPED_ARCHIVE = "agent.pyz"


def running_zipapp() -> Path | None:
    """The zipapp this code was shipped in (the agent over SSH), or None.

    The agent runs from the folder the bootstrap extracted the zipapp into, with the zipapp
    itself kept there (SHIPPED_ARCHIVE): that file is what the timer's install copies. Run from
    the zipapp directly (`python3 AGENT.pyz`, the timer's own run), it is the archive itself.
    """
    import reconciler

    root = Path(reconciler.__file__ or "").parents[1]
    if root.is_file():
        return root
    shipped = root / SHIPPED_ARCHIVE
    return shipped if shipped.is_file() else None


@functools.cache
def zipapp_name(archive: Path) -> str:
    """The versioned file name the timer's copy of a zipapp gets (version and content hash)."""
    from reconciler import __version__

    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    return f"reconciler-{__version__}-{digest[:16]}.pyz"


def timer_paths(home: Path, name: str) -> tuple[Path, Path]:
    """Where the agent is installed for the timer, and the spec it applies (remote/install.py).

    In the spec user's own data folder: the user's timer runs them, the user owns them.
    """
    folder = home / ".local" / "share" / "reconciler"
    return folder / "agent" / name, folder / "spec.yaml"
