"""What the backup kind reads of the host: whether the restic repository opens with the spec's
password file, and the backup history the backup runs recorded.

The repository probe runs `restic --no-lock --no-cache cat config` as the spec's user (read-only:
no lock file in the repository, no cache directory), the password named by path, backend
credentials from the environment file through the runner (never in argv). Its exit code and
stderr tell a repository that is not there from one the password does not open from one that
cannot be reached (recorded from restic 0.14.0: tests/data/probes/restic/).
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

from reconciler.core.command import Command, CommandResult
from reconciler.core.host import HostContext
from reconciler.core.probe import Probe
from reconciler.facts.codec import Redaction, recorded
from reconciler.facts.files import read_as_user, read_path
from reconciler.frozen import frozen
from reconciler.gateway.backup import RepositoryState, classify_repository
from reconciler.system.records import parse_line


@recorded
@frozen
class ResticRepository:
    """The repository as restic sees it with the spec's password file."""

    state: RepositoryState
    detail: str = ""  # restic's `Fatal: ...` line when it is not ok

    def redacted(self, redaction: Redaction) -> ResticRepository:
        """A URL in restic's message may carry credentials (rest:https://u:p@...)."""
        return ResticRepository(self.state, redaction.text(self.detail))


@recorded
@frozen
class ResticRepositoryProbe(Probe[ResticRepository]):
    """`restic --no-lock --no-cache cat config` as the spec's user."""

    restic: str
    location: str
    password_file: Path
    environment_file: Path | None = None

    def command(self, host: HostContext) -> Command | None:
        return Command(
            (
                *(self.restic, "--repo", self.location, "--password-file", str(self.password_file)),
                *("--no-lock", "--no-cache", "cat", "config"),
            ),
            scope="user",
            timeout_s=120,
            stdin="",
            env_file=self.environment_file,
        )

    def parse(self, result: CommandResult) -> ResticRepository:
        if result.exit_code is None:
            return ResticRepository("unreachable", result.error or "restic did not run")
        state, detail = classify_repository(result.exit_code, result.stderr)
        return ResticRepository(state, detail)


@recorded
@frozen
class ProfileBackups:
    """One profile's backup history: when its last backup succeeded and when one last failed."""

    profile: str
    last_success: str | None = None  # ISO time the backup ended
    last_failure: str | None = None


@recorded
@frozen
class BackupHistory:
    """What `backups.jsonl` says, per profile, and when it was read (epoch seconds)."""

    read_at: float
    profiles: tuple[ProfileBackups, ...] = ()

    def of(self, profile: str) -> ProfileBackups:
        return next((p for p in self.profiles if p.profile == profile), ProfileBackups(profile))


def parse_history(text: str, read_at: float) -> BackupHistory:
    """The `backup` lines of backups.jsonl (other kinds and unreadable lines skipped)."""
    success: dict[str, str] = {}
    failure: dict[str, str] = {}
    for line in text.splitlines():
        item = parse_line(line, "backups.jsonl")
        if item is None or item.get("kind") != "backup":
            continue
        profile, end = item.get("profile"), item.get("end")
        if not isinstance(profile, str) or not isinstance(end, str):
            continue
        (success if item.get("ok") is True else failure)[profile] = end
    names = sorted({*success, *failure})
    return BackupHistory(
        read_at, tuple(ProfileBackups(n, success.get(n), failure.get(n)) for n in names)
    )


@recorded
@frozen
class BackupHistoryProbe(Probe[BackupHistory]):
    """The spec user's `backups.jsonl` and its newest rotation (read with the user's
    permissions), in-process."""

    path: Path

    def read(self, host: HostContext) -> BackupHistory:
        now = time.time()
        # The newest rotated file too: right after a rotation the current one may hold little.
        rotated = self.path.with_name(self.path.name + ".1")
        texts = [
            read_as_user(host, partial(read_path, path, content=True)).text or ""
            for path in (rotated, self.path)
        ]
        return parse_history("\n".join(texts), now)
