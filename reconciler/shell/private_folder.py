"""Folders of the invoking account's own that hold what could act as it: the persisted SSH
connections' sockets, the built agent that is shipped to targets.

Anyone who can put a file there (or swap the folder) could run commands on a target as us, or
ship code of theirs to it; so every folder we create is 0700, and the last one must be ours,
a real folder (not a symlink) and closed to everyone else. When it is not, it is not used: what
lives there is a speed-up, never needed.
"""

from __future__ import annotations

import os
import stat


def user_cache_home() -> str:
    """`$XDG_CACHE_HOME` when it is an absolute path, else `~/.cache`."""
    cache = os.environ.get("XDG_CACHE_HOME", "")
    return cache if os.path.isabs(cache) else os.path.join(os.path.expanduser("~"), ".cache")


def own_private_folder(path: str) -> bool:
    """Create `path` (0700 for each folder made) and say whether it is ours alone."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o077
