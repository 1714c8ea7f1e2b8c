"""Running restic for the backup use cases: secret files checked before, backend credentials
from the environment file put into restic's environment (never into an argv or any output).

restic runs as the spec's user (`Command(scope="user")`: the runner adds `runuser` when we are
root), so the repository and the restored files belong to that user. The environment file is
the user's: the runner reads it as the user and hands its values only to restic itself, started
already dropped to the user (shell/env_file.py), never to a process of root's.
"""

from __future__ import annotations

import os
import stat

from reconciler.core.command import CommandResult
from reconciler.core.host import HostContext
from reconciler.gateway.backup import (
    RESTIC_TIMEOUT_S,
    Repository,
    restic_command,
    secret_problem,
)
from reconciler.shell.runner import HostRunner


def secret_problems(repo: Repository, host: HostContext) -> list[str]:
    """Why the password (and environment) file may not be used, empty when both are fine.
    Looked at as the user (system/as_user.py): the files are in a home the user controls, and an
    admin account acting through `sudo -n -u` could not even reach them as itself."""
    from functools import partial

    from reconciler.system.as_user import acting_account, call_as

    uid = host.user.uid if host.user is not None else None
    account = acting_account(host)
    files = [("password_file", repo.password_file)]
    if repo.environment_file is not None:
        files.append(("environment_file", repo.environment_file))
    problems = []
    for label, path in files:
        try:
            found = call_as(account, partial(_lstat, str(path)))
        except OSError as exc:
            problems.append(f"{label} {path}: {exc.strerror}")
            continue
        kind, mode, owner = found if found is not None else ("missing", None, None)
        problem = secret_problem(label, path, kind, mode, owner, uid)
        if problem is not None:
            problems.append(problem)
    return problems


def _lstat(path: str) -> tuple[str, int, int] | None:
    """(kind, permission bits, owner uid) of `path`, never followed; None when it is missing
    (done as the acting account: module-level, so that the sudo helper gets it pickled)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return ("file" if stat.S_ISREG(st.st_mode) else "other", stat.S_IMODE(st.st_mode), st.st_uid)


class Restic:
    """restic at `program` for one repository, run as the spec's user through `runner` (the
    use case's, from its AppContext)."""

    def __init__(self, program: str, repo: Repository, runner: HostRunner) -> None:
        self.program = program
        self.repo = repo
        self.runner = runner

    def check_environment(self) -> None:
        """Raise (OSError, ValueError) when the environment file cannot be used; it is read as
        the user, like every later run reads it."""
        from reconciler.shell.env_file import read_env_file
        from reconciler.system.as_user import acting_account

        if self.repo.environment_file is not None:
            host = self.runner.host
            read_env_file(self.repo.environment_file, host.user, acting_account(host))

    def run(
        self, argv: tuple[str, ...], *, mutating: bool = True, timeout_s: float = RESTIC_TIMEOUT_S
    ) -> CommandResult:
        """Run one restic argv (already built by reconciler.gateway.backup)."""
        return self.runner.run(
            restic_command(self.repo, argv, mutating=mutating, timeout_s=timeout_s)
        )
