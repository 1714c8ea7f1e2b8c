"""On the target: an admin account that logs in runs the command as root, through `sudo -n`.

Who may log in: root; the spec's user (root-only steps then use `sudo -n` one by one, or are
blocked with the sudoers rule, as locally); or an admin account with sudo, the usual way a
host is reached when root cannot log in. That account is neither root nor the user: as itself
it could neither read the user's 0700 folders nor act for the user. So the agent starts itself
again as root (`sudo -n -- PYTHON -I -c BOOT AGENT`, an argv, never a shell string), hands it
the request, and passes its output through; from there on everything is as if root had logged
in, and the plan is the one root would get. When sudo refuses without a password, the agent
runs as the admin (the plan then blocks the user's steps) and says which sudoers line would
allow it.
"""

from __future__ import annotations

import base64
import os
import pwd
import shlex
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import yaml

from reconciler.facts.invocation import running_zipapp

BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from reconciler.agent import main; sys.exit(main())"
)


def _spec_user(request: Mapping[str, Any]) -> str | None:
    """host.user of the spec the request carries (validated on the admin machine), or None."""
    name = request.get("spec")
    data = request.get("files", {}).get(name) if isinstance(name, str) else None
    if not isinstance(data, str):
        return None
    try:
        document = yaml.safe_load(base64.b64decode(data))
        user = document["host"]["user"]
    except (ValueError, TypeError, KeyError, yaml.YAMLError):
        return None
    return user if isinstance(user, str) else None


def elevated_argv(python: str, archive: str) -> list[str]:
    """The agent again, as root: `sudo -n -- PYTHON -I -c BOOT ARCHIVE`."""
    return ["sudo", "-n", "--", python, "-I", "-c", BOOT, archive]


def sudoers_line(login: str, python: str) -> str:
    """The rule that lets `login` run the agent as root without a password."""
    return f"{login} ALL=(root) NOPASSWD: {python}"


def run_as_root(raw: bytes, request: Mapping[str, Any]) -> int | None:
    """Run the request as root when an admin account (not root, not the spec's user) logged
    in and sudo allows it: the exit status of that run. None: run it here, as we are."""
    if os.geteuid() == 0:
        return None
    user = _spec_user(request)
    archive = running_zipapp()
    if user is None or archive is None:
        return None
    try:
        if pwd.getpwnam(user).pw_uid == os.geteuid():
            return None  # the spec's user: root-only steps use sudo -n one by one
        login = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return None  # no such user here: the plan says so
    argv = elevated_argv(sys.executable, str(archive))
    try:
        allowed = (
            subprocess.run(
                ["sudo", "-n", "-l", "--", *argv[3:]], capture_output=True, check=False, timeout=30
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):  # no sudo on this host
        allowed = False
    if not allowed:
        sys.stderr.write(
            f"reconciler: {login} is neither root nor {user}, and `sudo -n` does not let it run "
            f"the reconciler as root, so {user}'s files and services are out of reach from "
            f"here. To administer this host as {login}, allow it in sudoers "
            f"(visudo -f /etc/sudoers.d/reconciler):\n  {sudoers_line(login, sys.executable)}\n"
            f"or log in as root or as {user}. (tried: {shlex.join(argv[:4])} ...)\n"
        )
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    # Its stdout and stderr are ours (the result record and heartbeats pass straight through).
    return subprocess.run(argv, input=raw, check=False).returncode
