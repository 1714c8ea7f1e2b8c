"""The few lines `python3 -c` runs on the target before our code is there.

Standard library only, and written for any Python 3 so that an old interpreter can say that it is
too old instead of failing on syntax. argv: HASH MODE [SIZE]. MODE `run`: the agent must already be
cached; MODE `install`: stdin starts with SIZE bytes of agent, checked against HASH, stored
atomically (0700 directory, temp file, fsync, rename); the rest of stdin is the request.
Exit codes the client understands: 90 Python too old, 91 agent not cached, 92 agent corrupt.
"""

from __future__ import annotations

TOO_OLD = 90
NOT_CACHED = 91
CORRUPT = 92

SOURCE = r"""
import hashlib, os, sys
if sys.version_info < (3, 11):
    sys.stderr.write("reconciler: the target's python3 is %d.%d; 3.11 or newer is needed\n" % sys.version_info[:2])
    sys.exit(90)
digest, mode = sys.argv[1], sys.argv[2]
base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
folder = os.path.join(base, "reconciler", "agent")
path = os.path.join(folder, digest + ".pyz")
if mode == "install":
    data = sys.stdin.buffer.read(int(sys.argv[3]))
    if hashlib.sha256(data).hexdigest() != digest:
        sys.stderr.write("reconciler: the agent arrived damaged\n")
        sys.exit(92)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.rename(tmp, path)
    # Agents of other versions may still be running: remove only those unused for a week.
    for name in os.listdir(folder):
        old = os.path.join(folder, name)
        if name.endswith(".pyz") and old != path and os.stat(old).st_mtime < os.stat(path).st_mtime - 7 * 86400:
            os.unlink(old)
else:
    try:
        with open(path, "rb") as cached:
            if hashlib.sha256(cached.read()).hexdigest() != digest:
                sys.exit(91)
    except OSError:
        sys.exit(91)
sys.path.insert(0, path)
from reconciler.agent import main
sys.exit(main())
"""


def remote_argv(
    digest: str, *, python: str = "python3", install_size: int | None = None
) -> list[str]:
    """`python3 -c SOURCE HASH run` or `... HASH install SIZE`."""
    if install_size is None:
        return [python, "-c", SOURCE, digest, "run"]
    return [python, "-c", SOURCE, digest, "install", str(install_size)]
