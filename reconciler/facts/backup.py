"""What the backup kind reads of the host: whether the restic repository opens with the spec's
password file, and the backup history the backup runs recorded.

`backups.jsonl` (written through the record store, system/records.py, as run records are) has
one reader of its lines, `parse_records` here: the probe's history and `reconciler backup`'s
status (app/backup.py) both read records through it.

The repository probe runs `restic --no-lock --no-cache cat config` as the spec's user (read-only:
no lock file in the repository, no cache directory), the password named by path, backend
credentials from the environment file through the runner (never in argv). Its exit code and
stderr tell a repository that is not there from one the password does not open from one that
cannot be reached (recorded from restic 0.14.0: tests/data/probes/restic/).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import field
from functools import partial
from pathlib import Path
from typing import Any

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


RECORDS = "backups.jsonl"


@frozen
class BackupRecord:
    """One line of backups.jsonl: a backup, verify or restore run of one profile."""

    kind: str  # backup, verify, restore
    profile: str
    start: str
    end: str
    ok: bool
    snapshot: str | None = None
    downtime_s: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def parse_records(files: Iterable[tuple[str, Iterable[str]]]) -> list[BackupRecord]:
    """The records of (source, lines) pairs (`RecordFile.read()`'s, oldest first), in order
    (pure). A line that is not a record is skipped, never fatal: torn by a crash, too deep
    (system/records.parse_line), or without a text kind, profile and end and a boolean ok;
    a field of the wrong type is left out, a field we do not know is ignored."""
    out: list[BackupRecord] = []
    for source, lines in files:
        for line in lines:
            record = _record(parse_line(line, source))
            if record is not None:
                out.append(record)
    return out


def _record(data: dict[str, Any] | None) -> BackupRecord | None:
    if data is None:
        return None
    kind, profile, end, ok = (data.get(k) for k in ("kind", "profile", "end", "ok"))
    if not (isinstance(kind, str) and isinstance(profile, str) and isinstance(end, str)):
        return None
    if not isinstance(ok, bool):
        return None
    start, snapshot, downtime, detail = (
        data.get(k) for k in ("start", "snapshot", "downtime_s", "detail")
    )
    seconds = (
        float(downtime)
        if isinstance(downtime, int | float) and not isinstance(downtime, bool)
        else None
    )
    return BackupRecord(
        kind,
        profile,
        start if isinstance(start, str) else "",
        end,
        ok,
        snapshot if isinstance(snapshot, str) else None,
        seconds,
        detail if isinstance(detail, dict) else {},
    )


def parse_history(text: str, read_at: float) -> BackupHistory:
    """Per profile, the end of its last successful and of its last failed backup (verify and
    restore records, and lines that are not records, skipped)."""
    success: dict[str, str] = {}
    failure: dict[str, str] = {}
    for record in parse_records([(RECORDS, text.splitlines())]):
        if record.kind == "backup":
            (success if record.ok else failure)[record.profile] = record.end
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
