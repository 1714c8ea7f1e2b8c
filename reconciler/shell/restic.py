"""Running restic for the backup use cases: secret files checked before, backend credentials
from the environment file put into restic's environment (never into an argv or any output).

restic runs as the spec's user (`Command(scope="user")`: the runner adds `runuser` when we are
root), so the repository and the restored files belong to that user. The environment file is
the user's: the runner reads it as the user and hands its values only to restic itself, started
already dropped to the user (shell/env_file.py), never to a process of root's.
"""

from __future__ import annotations

import os

from reconciler.core.command import CommandResult
from reconciler.core.host import HostContext
from reconciler.gateway.backup import (
    RESTIC_TIMEOUT_S,
    Repository,
    restic_command,
    secret_file_problem,
)
from reconciler.shell.runner import HostRunner


def secret_problems(repo: Repository, host: HostContext) -> list[str]:
    """Why the password (and environment) file may not be used, empty when both are fine."""
    uid = host.user.uid if host.user is not None else None
    files = [("password_file", repo.password_file)]
    if repo.environment_file is not None:
        files.append(("environment_file", repo.environment_file))
    problems = []
    for label, path in files:
        try:
            st: os.stat_result | None = os.lstat(path)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            problems.append(f"{label} {path}: {exc.strerror}")
            continue
        problem = secret_file_problem(label, path, st, uid)
        if problem is not None:
            problems.append(problem)
    return problems


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
