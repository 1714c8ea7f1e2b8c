"""On the target, before a remote apply: install what the reconcile timer will run.

The agent runs from the login user's cache with the spec in a temporary folder; the timers run
as the spec's user long after both are gone. So before an apply of a spec whose reconcile timer
is on or that backs up (the backup timer runs the same program), and that names no
`reconcile.command` or `reconcile.source` of its own, the agent copies itself to a
versioned path and the spec to a stable one, in the spec user's data folder
(facts/invocation.py `timer_paths`, which is also what the plan's timer unit names), with the
digest of the spec the admin machine validated beside it (`spec.yaml.validated`: the agent has
no jsonschema, so the timer's run skips only the schema check of exactly that spec).

The files are the user's, written as the user (root never writes into a home the user
controls): directly when we are that user, else through `runuser -u USER` (root) or
`sudo -n -u USER` (an admin account), one process for all three files, atomically (temp, fsync,
rename; folders 0700, files 0600).
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

from reconciler.facts.invocation import running_zipapp, timer_paths, zipapp_name

# Standard library only: it runs as the spec's user with `python3 -I -c`. argv: our folders,
# outermost first (made 0700; their parents, ~/.local/share, as the user's umask says); stdin: a
# JSON list of [path, base64 data]. Versions other than the new one unused for a week go.
INSTALLER = r"""
import base64, json, os, sys, time
os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True)
for folder in sys.argv[1:]:
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
files = json.load(sys.stdin)
for path, data in files:
    data = base64.b64decode(data)
    try:
        with open(path, "rb") as old:
            if old.read() == data:
                continue
    except FileNotFoundError:
        pass
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.rename(tmp, path)
app = files[0][0]
for name in os.listdir(os.path.dirname(app)):
    other = os.path.join(os.path.dirname(app), name)
    if name.endswith(".pyz") and other != app and os.stat(other).st_mtime < time.time() - 7 * 86400:
        os.unlink(other)
"""


class InstallFailed(Exception):
    """The timer's program or spec could not be installed; the message says why."""


def install_for_timer(spec_file: Path, validated: str) -> Path | None:
    """Install the running agent and `spec_file` for the spec user's timer (module docstring);
    the installed zipapp's path, or None when the spec's timer needs nothing installed."""
    from reconciler.bounded import read_bounded
    from reconciler.spec import load_spec
    from reconciler.spec.limits import MAX_BYTES

    spec = load_spec(spec_file)
    reconcile = spec.reconcile
    timers = reconcile.timer.enabled or spec.backup is not None  # both run `program`
    if not timers or reconcile.command is not None or reconcile.source is not None:
        return None
    archive = running_zipapp()
    try:
        user = pwd.getpwnam(spec.host.user)
    except KeyError:
        return None  # the plan blocks the timer on the missing user
    if archive is None:
        return None
    app, spec_path = timer_paths(Path(user.pw_dir), zipapp_name(archive))
    data = read_bounded(spec_file, MAX_BYTES)  # as load_spec read it (bounded.py)
    files = [
        [str(app), base64.b64encode(archive.read_bytes()).decode()],
        [str(spec_path), base64.b64encode(data).decode()],
        [f"{spec_path}.validated", base64.b64encode(validated.encode() + b"\n").decode()],
    ]
    if os.geteuid() == user.pw_uid:
        prefix: list[str] = []
    elif os.geteuid() == 0:
        prefix = ["runuser", "-u", user.pw_name, "--"]
    else:
        prefix = ["sudo", "-n", "-u", user.pw_name, "--"]
    done = subprocess.run(
        [*prefix, sys.executable, "-I", "-c", INSTALLER, str(spec_path.parent), str(app.parent)],
        input=json.dumps(files).encode(),
        capture_output=True,
        cwd="/",
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
        how = " ".join(prefix[:-1]) or "as this user"
        raise InstallFailed(
            f"could not install the timer's program for {user.pw_name} ({how}): {last}"
        )
    return app


def schema_checked_beside(argv: list[str]) -> set[str]:
    """The digests recorded beside any spec named in `argv` (`SPEC.validated`), for the timer's
    run of the installed zipapp (the loader trusts a digest only for exactly those bytes)."""
    digests: set[str] = set()
    for arg in argv:
        mark = Path(arg + ".validated")
        try:
            digests.update(mark.read_text(encoding="ascii").split()[:1])
        except (OSError, UnicodeDecodeError, ValueError):
            continue
    return digests
