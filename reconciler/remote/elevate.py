"""On the target: an admin account that logs in runs the command as root, through `sudo -n`.

Who may log in: root; the spec's user (root-only steps then use `sudo -n` one by one, or are
blocked with the sudoers rule, as locally); or an admin account with sudo, the usual way a
host is reached when root cannot log in. That account is neither root nor the user: as itself
it could neither read the user's 0700 folders nor act for the user. So the agent starts itself
again as root (`sudo -n -- PYTHON -I -c BOOT AGENT`, an argv, never a shell string), hands it
the request, and passes its output through; from there on everything is as if root had logged
in, and the plan is the one root would get: the fast path for an admin with full sudo.

An admin with narrow rules only (anything as the user, the root-only commands one by one) runs
as itself: the user's commands through `sudo -n -u USER -- ARGV`, the user's files through one
helper that `sudo -n -u USER` started (system/as_user.py), root-only steps through
`sudo -n -- ARGV`; the plan is the same. When sudo allows neither, the agent runs as the admin
(the plan then blocks the user's steps) and says which sudoers lines would allow it.
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

from reconciler.core.host import user_sudoers_line
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


def _acts_as_user(user: str) -> str | None:
    """None when `sudo -n -u USER` starts the helper that acts as the user (kept for the
    command, system/as_user.py), else sudo's reason."""
    from reconciler.core.host import Account
    from reconciler.system.as_user import sudo_reaches

    account = Account.lookup(user)
    return "no such user" if account is None else sudo_reaches(account, running_zipapp())


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
        refused = _acts_as_user(user)
        if refused is not None:
            sys.stderr.write(
                f"reconciler: {login} is neither root nor {user}, and `sudo -n` lets it neither "
                f"act as {user} ({refused}) nor run the reconciler as root, so {user}'s files "
                f"and services are out of reach from here. To administer this host as {login}, "
                f"allow it in sudoers (visudo -f /etc/sudoers.d/reconciler), either narrowly "
                f"(the root-only steps the plan blocks name their own lines):\n"
                f"  {user_sudoers_line(login, user)}\n"
                f"or as root (what an admin with full sudo has anyway):\n"
                f"  {sudoers_line(login, sys.executable)}\n"
                f"or log in as root or as {user}. (tried: {shlex.join(argv[:4])} ...)\n"
            )
        return None  # as the admin: the user's side through `sudo -n -u`, if at all
    sys.stdout.flush()
    sys.stderr.flush()
    # Its stdout and stderr are ours (the result record and heartbeats pass straight through).
    return subprocess.run(argv, input=raw, check=False).returncode
