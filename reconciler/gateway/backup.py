"""Backups with restic, the pure part: what each profile's backup covers, restic's argv for
every call, and the readers of restic's JSON. No subprocess and no file access here (the effect
side is reconciler/shell/restic.py and reconciler/shell/backup.py, which carries out the
operations built here; the use cases reconciler/app/backup.py).

The repository password is only ever named by path (`--password-file`): nothing here can put
its content in an argv, an output line or a record.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Literal

from reconciler.core.action import BackupProfile, RestoreInPlace, RestoreSnapshot, VerifySnapshot
from reconciler.core.command import Command
from reconciler.core.host import HostContext
from reconciler.frozen import frozen
from reconciler.gateway.paths import expand, home, profile_paths
from reconciler.spec.calendar import period_s
from reconciler.spec.model import Backup, Retention, Spec

PROFILE_TAG = "profile:"
HOST_TAG = "host:"
MIN_RESTIC = (0, 12)  # --json everywhere we read it, `check --read-data-subset N%`


@frozen
class ProfileBackup:
    """One profile's backup: what restic copies, with which tags, and the unit to stop."""

    profile: str
    paths: tuple[Path, ...]  # the state directory, then the workspace
    state: Path
    unit: str
    port: int
    tags: tuple[str, ...]


@frozen
class Repository:
    """Where the repository is and the secret files restic reads (all resolved for this host)."""

    location: str
    password_file: Path
    environment_file: Path | None


def repository(backup: Backup, host: HostContext) -> Repository:
    """The repository of `backup`, `~` resolved against the spec user's home."""
    home_dir = home(host)
    location = backup.repository
    if location.startswith("~/"):
        location = str(expand(location, home_dir))
    env = backup.environment_file
    return Repository(
        location,
        expand(backup.password_file, home_dir),
        expand(env, home_dir) if env is not None else None,
    )


def profile_backups(spec: Spec, host: HostContext) -> tuple[ProfileBackup, ...]:
    """Every backed-up profile, in spec order."""
    out = []
    for profile in spec.backed_up_profiles():
        paths = profile_paths(spec, profile, host)
        out.append(
            ProfileBackup(
                profile=profile.name,
                paths=(paths.state, paths.workspace),
                state=paths.state,
                unit=paths.unit,
                port=profile.port,
                tags=(f"{PROFILE_TAG}{profile.name}", f"{HOST_TAG}{spec.host.name}"),
            )
        )
    return tuple(out)


def base_argv(restic: str, repo: Repository) -> tuple[str, ...]:
    """`restic -r REPO --password-file FILE`: the password by path, never by value."""
    return (restic, "--repo", repo.location, "--password-file", str(repo.password_file))


def backup_argv(
    restic: str,
    repo: Repository,
    target: ProfileBackup,
    host_name: str,
    excludes: Iterable[str],
    paths: Iterable[Path],
) -> tuple[str, ...]:
    """One snapshot of `paths` of one profile (the caller passes those that exist: restic fails
    on a missing one, and a new profile may have no workspace yet)."""
    tags = tuple(arg for tag in target.tags for arg in ("--tag", tag))
    exclude = tuple(arg for pattern in excludes for arg in ("--exclude", pattern))
    return (
        *base_argv(restic, repo),
        "backup",
        "--json",
        "--host",
        host_name,
        *tags,
        *exclude,
        *(str(p) for p in paths),
    )


def forget_argv(
    restic: str, repo: Repository, target: ProfileBackup, host_name: str, retention: Retention
) -> tuple[str, ...]:
    """`forget --prune` of one profile's snapshots on this host, by the spec's retention."""
    keeps = (
        ("--keep-last", retention.keep_last),
        ("--keep-daily", retention.keep_daily),
        ("--keep-weekly", retention.keep_weekly),
        ("--keep-monthly", retention.keep_monthly),
    )
    return (
        *base_argv(restic, repo),
        "forget",
        "--prune",
        "--host",
        host_name,
        "--tag",
        target.tags[0],
        "--group-by",
        "host,tags",
        *(arg for flag, n in keeps if n > 0 for arg in (flag, str(n))),
    )


# Long, but bounded: a run never hangs the timer forever (the runner kills the process tree).
RESTIC_TIMEOUT_S = 6 * 3600.0
# restic must never fall back to asking on a terminal, nor take a password we did not choose
# from the invoker's environment.
REFUSED_ENV = ("RESTIC_PASSWORD", "RESTIC_PASSWORD_COMMAND", "RESTIC_REPOSITORY_FILE")


def restic_command(
    repo: Repository,
    argv: tuple[str, ...],
    *,
    mutating: bool = True,
    timeout_s: float = RESTIC_TIMEOUT_S,
) -> Command:
    """One restic argv as the spec's user (so the repository and what it restores are the
    user's), with the environment file's variables (the runner reads it as the user and hands
    them only to restic) and none of REFUSED_ENV."""
    return Command(
        argv,
        scope="user",
        mutating=mutating,
        timeout_s=timeout_s,
        stdin="",
        env_file=repo.environment_file,
        unset_env=REFUSED_ENV,
    )


def backup_operation(
    spec: Spec, restic: str, repo: Repository, target: ProfileBackup
) -> BackupProfile:
    """`backup run`'s operation for one profile: restic backup (the runner appends the paths
    that exist), forget --prune by the retention, the gateway stopped around the copy when the
    spec's consistency is `stop`."""
    assert spec.backup is not None
    backup, host_name = spec.backup, spec.host.name
    copy = backup_argv(restic, repo, target, host_name, backup.exclude, ())
    forget = None
    if backup.retention is not None:
        forget = restic_command(
            repo, forget_argv(restic, repo, target, host_name, backup.retention)
        )
    unit = target.unit if backup.consistency == "stop" else None
    return BackupProfile(target.profile, target.paths, restic_command(repo, copy), forget, unit)


def restore_argv(restic: str, repo: Repository, snapshot_id: str, target: Path) -> tuple[str, ...]:
    """`restic restore ID --target DIR` (`/` puts every path back where it was)."""
    return (*base_argv(restic, repo), "restore", snapshot_id, "--target", str(target))


def restore_operation(
    restic: str, repo: Repository, snapshot_id: str, directory: Path, owner: str | None
) -> RestoreSnapshot:
    """`backup restore` into a fresh directory (staging or --target)."""
    restore = restic_command(repo, restore_argv(restic, repo, snapshot_id, directory))
    return RestoreSnapshot(directory, restore, owner)


def verify_operation(
    restic: str, repo: Repository, profile: str, snapshot: Snapshot
) -> VerifySnapshot:
    """`backup verify` of one profile's snapshot: `restic restore ID --verify` (the runner appends
    `--target` and its scratch directory) and `restic ls --json ID`. --no-cache: read the
    repository itself, not the local copy of its tree packs."""
    base = base_argv(restic, repo)
    restore = (*base, "--no-cache", "restore", snapshot.id, "--verify")
    listing = (*base, "ls", "--json", snapshot.id)
    return VerifySnapshot(
        profile,
        snapshot.id,
        snapshot.short_id,
        restic_command(repo, restore),
        restic_command(repo, listing, mutating=False),
    )


def restore_in_place_operation(
    spec: Spec,
    restic: str,
    repo: Repository,
    target: ProfileBackup,
    snapshot: Snapshot,
    stamp: str,
    owner: str | None,
) -> RestoreInPlace:
    """`backup restore --in-place`: the snapshot's paths moved aside to
    `<name>.before-restore-<stamp>`, then restored where they were."""
    return RestoreInPlace(
        target.profile,
        target.unit,
        tuple(Path(p) for p in snapshot.paths),
        f".before-restore-{stamp}",
        target.state,
        restic_command(repo, restore_argv(restic, repo, snapshot.id, Path("/"))),
        target.port,
        spec.runtime.gateway.start_timeout_s,
        owner,
    )


def secret_file_problem(
    label: str, path: Path, st: os.stat_result | None, uid: int | None
) -> str | None:
    """Why `path` (lstat `st`, None: absent) may not hold a secret for user `uid`, or None."""
    if st is None:
        return secret_problem(label, path, "missing", None, None, uid)
    kind = "file" if stat.S_ISREG(st.st_mode) else "other"
    return secret_problem(label, path, kind, stat.S_IMODE(st.st_mode), st.st_uid, uid)


def secret_problem(
    label: str, path: Path, kind: str, mode: int | None, owner: int | None, uid: int | None
) -> str | None:
    """Why `path` (`kind` missing/file/symlink/..., its permission bits and owner uid) may not
    hold a secret for user `uid`, or None (the plan asks this of a PathState)."""
    if kind == "missing":
        return f"{label} {path} does not exist: create it (mode 0600) with the repository secret"
    if kind != "file":
        return f"{label} {path} is not a regular file (symlinks are refused)"
    if mode is not None and mode & 0o077:
        return f"{label} {path} has mode {mode:04o}: others may read it; run `chmod 600 {path}`"
    if uid is not None and owner != uid:
        return f"{label} {path} belongs to uid {owner}, not the spec's user (uid {uid})"
    return None


def schedule_period_s(backup: Backup) -> int:
    """The time between two scheduled backups (an interval as written, a calendar expression
    by its typical period)."""
    interval = backup.schedule_interval_s
    return interval if interval is not None else period_s(backup.schedule)


STALE_AFTER_PERIODS = 2  # a backup missed once is late; missed twice, it is stale


def stale_after_s(backup: Backup) -> int:
    """How old the last successful backup may get before it is stale (the one freshness rule
    of `status` and of the backup kind's plan warning)."""
    return STALE_AFTER_PERIODS * schedule_period_s(backup)


def backup_age_s(last_success: str | None, now_s: float) -> float | None:
    """Seconds since the last successful backup ended (an ISO time), None when there is none."""
    if last_success is None:
        return None
    return now_s - datetime.fromisoformat(last_success).timestamp()


@frozen
class Snapshot:
    """One restic snapshot, as `restic snapshots --json` lists it."""

    id: str
    short_id: str
    time: str
    hostname: str
    tags: tuple[str, ...]
    paths: tuple[str, ...]

    @property
    def profile(self) -> str | None:
        """The profile tag's name, or None for a snapshot we did not make."""
        return next((t[len(PROFILE_TAG) :] for t in self.tags if t.startswith(PROFILE_TAG)), None)


def parse_snapshots(text: str) -> tuple[Snapshot, ...]:
    """`restic snapshots --json` -> snapshots, oldest first."""
    data = json.loads(text or "[]")
    out = [
        Snapshot(
            id=item["id"],
            short_id=item.get("short_id", item["id"][:8]),
            time=item["time"],
            hostname=item.get("hostname", ""),
            tags=tuple(item.get("tags") or ()),
            paths=tuple(item.get("paths") or ()),
        )
        for item in data
    ]
    return tuple(sorted(out, key=lambda s: s.time))


def latest_per_profile(snapshots: Iterable[Snapshot], host_name: str) -> dict[str, Snapshot]:
    """The newest snapshot of each profile made on `host_name`."""
    latest: dict[str, Snapshot] = {}
    for snap in snapshots:
        name = snap.profile
        if (
            name is not None
            and snap.hostname == host_name
            and (name not in latest or snap.time >= latest[name].time)
        ):
            latest[name] = snap
    return latest


@frozen
class ListedFile:
    """A regular file of a snapshot (`restic ls --json`): its path, size and permission bits."""

    path: str
    size: int
    mode: int


def parse_ls(text: str) -> tuple[ListedFile, ...]:
    """The regular files of `restic ls --json SNAPSHOT` (one JSON object per line)."""
    files = []
    for line in text.splitlines():
        if not line.strip():
            continue
        node = json.loads(line)
        if node.get("struct_type") == "node" and node.get("type") == "file":
            files.append(ListedFile(node["path"], int(node.get("size", 0)), node["mode"] & 0o7777))
    return tuple(files)


def backup_summary(stdout: str) -> dict[str, object]:
    """The summary line of `restic backup --json` (sizes, counts, snapshot id), or {}."""
    for line in reversed(stdout.splitlines()):
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and item.get("message_type") == "summary":
            return item
    return {}


RepositoryState = Literal["ok", "absent", "wrong-password", "unreachable"]

# How `restic cat config` says there is no repository (local and sftp: the config file's stat;
# rest/s3/...: a 404 on it, "key does not exist"). An unreachable rest server prints "Is there a
# repository ..." too, after a connection error (restic 0.14.0, tests/data/probes/restic/): only
# these words make it "absent", so a repository is never initialised over a network failure.
_ABSENT = ("no such file or directory", "does not exist", "404 not found")


def classify_repository(exit_code: int | None, stderr: str) -> tuple[RepositoryState, str]:
    """What `restic cat config` says of the repository, and restic's `Fatal:` line on failure."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    detail = next((line for line in lines if line.startswith("Fatal:")), lines[-1] if lines else "")
    if exit_code == 0:
        return "ok", ""
    if "wrong password or no key found" in stderr:
        return "wrong-password", detail
    lowered = stderr.lower()
    if "is there a repository at the following location?" in lowered and any(
        word in lowered for word in _ABSENT
    ):
        return "absent", detail
    return "unreachable", detail or f"exit {exit_code}"


def repository_state(exit_code: int | None, stderr: str) -> str:
    """ok, absent, wrong-password, or error (unreachable, or anything else restic says)."""
    state = classify_repository(exit_code, stderr)[0]
    return "error" if state == "unreachable" else state


def restic_version(text: str) -> tuple[int, int, int] | None:
    """`restic version` -> (0, 14, 0)."""
    parts = text.split()
    if len(parts) < 2 or parts[0] != "restic":
        return None
    try:
        major, minor, patch = (int(x) for x in parts[1].split(".")[:3])
    except ValueError:
        return None
    return major, minor, patch
