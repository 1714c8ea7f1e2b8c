"""Unattended runs: the apply lock, run records, suspension, git revisions, status and logs.

Everything lives in one private directory, `$XDG_STATE_HOME/reconciler/` (default
`~/.local/state/reconciler/`) of whoever runs the reconciler:

    lock            flock()ed by every apply; holds the holder's pid, user, command, start
    runs.jsonl      one JSON line per apply (runs.jsonl.1 .. .3 after rotation)
    suspended.json  present while unattended runs are suspended
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.core.host import HostContext

STATE_DIR_MODE = 0o700  # run records name specs, revisions and commands: private to the user


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where this process keeps its lock and records (XDG base directory rules)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    if not base or not os.path.isabs(base):
        home = env.get("HOME") or os.path.expanduser("~")
        base = os.path.join(home, ".local", "state")
    return Path(base) / "reconciler"


def host_state_dir(host: HostContext, own: Path) -> Path:
    """The state directory for the spec's user's gateways on this host, whoever runs us: `own`
    (ours, by the XDG rules above) when we are that user or there is no other user to act
    for; the user's `~/.local/state/reconciler` when root (or an admin account through
    `sudo -n -u`) acts for the user. Root only ever
    touches it as the user (system/as_user.py), so that both find one host in it."""
    user = host.user
    acts_for_user = host.is_root or host.sudo_to_user  # as the user, through as_user.py
    if user is None or not acts_for_user or host.acting_as_user or user.uid == 0:
        return own
    return user.home / ".local" / "state" / "reconciler"


class StateDirInvalid(OSError):
    """Something other than a directory sits where the state directory must be."""


def check_state_dir(path: Path) -> None:
    """Raise StateDirInvalid (saying what to do) when `path` or a parent is not a directory.

    A missing directory is fine: the first apply creates it.
    """
    for part in (path, *path.parents):
        if not os.path.lexists(part):
            continue
        if part.is_dir():
            return
        what = "a symbolic link to no directory" if part.is_symlink() else _kind_of(part)
        raise StateDirInvalid(
            f"{part} is {what}, but the reconciler keeps its lock, run records and suspension "
            f"in the directory {path}: move it away (for example `mv {part} {part}.bak`) "
            "and run the command again"
        )


def _kind_of(path: Path) -> str:
    import stat

    mode = path.lstat().st_mode
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a directory"


def ensure_state_dir(path: Path) -> Path:
    """Create `path` (and parents) and make `path` itself 0700; return it.

    Raises StateDirInvalid when a file stands where a directory must be.
    """
    check_state_dir(path)
    path.mkdir(parents=True, exist_ok=True, mode=STATE_DIR_MODE)
    # mkdir's mode is filtered by the umask and ignored for an existing directory: fix it.
    if (path.stat().st_mode & 0o777) != STATE_DIR_MODE:
        path.chmod(STATE_DIR_MODE)
    return path
