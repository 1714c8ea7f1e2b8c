"""Reading a `KEY=value` file whose values go into one command's environment (a profile's
`gateway.env`, `backup.environment_file`), and nowhere else.

The file belongs to whoever the command runs as, usually the spec's user. Its content decides
what a process sees in its environment, and an environment is code for the dynamic loader
(`LD_PRELOAD`, `LD_AUDIT`, `GLIBC_TUNABLES`) and for the search of programs (`PATH`): so its
values are only ever handed to a process that already runs as that owner (shell/runner.py
starts such a command without `runuser` as root, see `_start_as` there), never to a process of
root's. Reading it is done as the owner too (system/as_user.py), bounded and without blocking:
a symlink, FIFO, device or another account's file is refused before a byte is read.
"""

from __future__ import annotations

import os
import stat
from functools import partial
from pathlib import Path

from reconciler.core.host import Account
from reconciler.core.secrets import learn_secrets
from reconciler.system.as_user import call_as

MAX_ENV_FILE_BYTES = 64 * 1024  # an env file is a few lines; more is not an env file


class EnvFileRefused(ValueError):
    """The file may not be used (not a regular file, someone else's, too big, a bad line)."""


def read_env_file(path: Path, owner: Account | None, acting: Account | None) -> dict[str, str]:
    """The variables of `path`, read with `acting`'s permissions (None: ours) and only when it
    is a regular file owned by `owner` (None: anyone). Raises OSError or EnvFileRefused."""
    text = call_as(acting, partial(_read, str(path), None if owner is None else owner.uid))
    if not isinstance(text, str):
        raise EnvFileRefused(f"{path}: unreadable")
    learn_secrets(text)  # its values are masked in anything we print or write from now on
    return parse_env(text, path)


def _read(path: str, uid: int | None) -> str:
    # O_NOFOLLOW: never a symlink; O_NONBLOCK: a FIFO swapped in cannot hang the open.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise EnvFileRefused(f"{path}: not a regular file")
        if uid is not None and info.st_uid != uid:
            raise EnvFileRefused(f"{path}: owned by uid {info.st_uid}, not {uid}; not read")
        if info.st_size > MAX_ENV_FILE_BYTES:
            raise EnvFileRefused(f"{path}: {info.st_size} bytes, more than an env file holds")
        data = os.read(fd, MAX_ENV_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_ENV_FILE_BYTES:
        raise EnvFileRefused(f"{path}: more than {MAX_ENV_FILE_BYTES} bytes")
    return data.decode("utf-8", errors="replace")


def parse_env(text: str, path: Path) -> dict[str, str]:
    """`KEY=value` lines: blank lines and `#` comments skipped, an optional `export `, one pair
    of matching quotes around the value removed. A line of another shape is refused by its
    number, never quoted (it may hold a secret)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        key = key.strip()
        if not sep or not key.isidentifier() or not key.isascii():
            raise EnvFileRefused(f"{path}:{number}: not a KEY=value line")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if "\0" in value:
            raise EnvFileRefused(f"{path}:{number}: a NUL byte in the value")
        values[key] = value
    return values
