"""What every semantic rule is made of: the Issue it reports, and defensive accessors.

Rules run even when the schema found errors (so a user sees everything at once), so they read
the data defensively: anything of the wrong shape is the schema's business and is skipped.
Shared by the document-wide rules (semantic.py) and the rules each section keeps beside its
model (sections/<name>/rules.py).
"""

from __future__ import annotations

import difflib
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from reconciler.frozen import frozen
from reconciler.spec.naming import PRODUCTS, ProductNames, product_names
from reconciler.spec.schema import pattern
from reconciler.spec.yaml_source import Document, PathT, show


@frozen
class Issue:
    """One rule violation: where (a path into the data; at its key or value), what, how to fix."""

    path: PathT
    message: str
    hint: str | None = None
    at_key: bool = False


Rule = Callable[[Document], Iterable[Issue]]


def get(data: Any, *path: str) -> Any:
    """data[path[0]][path[1]]..., or None when any step is missing or not a mapping."""
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def profiles(doc: Document) -> dict[str, Any]:
    """The profiles mapping ({} when absent or of the wrong shape)."""
    found = get(doc.data, "profiles")
    return found if isinstance(found, dict) else {}


def as_int(value: Any) -> int | None:
    """An integer value (JSON Schema counts 443.0 as an integer too), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def user_name(doc: Document, path: tuple[str, ...]) -> Iterator[Issue]:
    """The issue of a string at `path` that is not a POSIX user name (a user name goes into
    argv, unit files and, over SSH, a remote shell line): host.user, host.ssh.user and
    tailscale.operator say it in the same words."""
    value = get(doc.data, *path)
    if isinstance(value, str) and not re.fullmatch(pattern("userName"), value):
        yield Issue(
            path,
            f"{show(value)} is not a valid POSIX user name",
            "a user name starts with a lowercase letter or _, then lowercase letters, digits, "
            "_ or -, at most 32 characters",
        )


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """`did you mean `x`?` for the closest choice, or None."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def names(doc: Document) -> ProductNames:
    """The naming table of the document's product (clawdbot when it names none we know)."""
    product = get(doc.data, "product")
    return product_names(
        product if isinstance(product, str) and product in PRODUCTS else "clawdbot"
    )


# Directories no profile may own, nor any data root be or lie in: the system's, and every
# user's home (the spec user's own home is written `~/`). Root would create, chmod or write
# there on the spec's behalf.
SYSTEM_DIRS = (
    "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
    "/lost+found", "/proc", "/root", "/run", "/sbin", "/sys", "/tmp", "/usr", "/var/backups",
    "/var/cache", "/var/lib/apt", "/var/lib/dpkg", "/var/lib/systemd", "/var/lock", "/var/log",
    "/var/mail", "/var/run", "/var/spool", "/var/tmp",
)  # fmt: skip
# Too broad to be a data root themselves (a directory inside them is fine): `/srv/clawd`.
BROAD_DIRS = ("/", "/media", "/mnt", "/opt", "/srv", "/var", "/var/lib", "/var/opt")


def canonical(path: str, user: str) -> str:
    """`path` spelled one way: `~/` as the user's usual home, `//`, `.` and `..` folded, so that
    `~/./.clawdbot-ops/../.clawdbot-ops/restic` and `/home/claw/.clawdbot-ops` compare equal."""
    home = "/root" if user == "root" else f"/home/{user}"
    if path == "~" or path.startswith("~/"):
        path = home + path[1:]
    return posixpath.normpath("/" + path.lstrip("/")) if path.startswith("/") else path


def inside(path: str, directory: str) -> bool:
    """`path` is `directory` or lies below it (both normalised, absolute)."""
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def system_dir(path: str) -> str | None:
    """The system directory `path` is or lies in, or None."""
    return next((d for d in SYSTEM_DIRS if inside(path, d)), None)
