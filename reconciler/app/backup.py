"""Backup use cases: `backup init|run|list|verify|restore` (docs/backups.md).

Each opens a session (spec with a `backup` section, restic present and recent enough, secret
files 0600 and the user's, the AppContext's runner), then runs restic through
reconciler/shell/restic.py; `run`, `verify` and `restore` hand typed operations
(`BackupProfile`, `VerifySnapshot`, `RestoreSnapshot`, `RestoreInPlace`, built in
reconciler/gateway/backup.py; `WriteTextfile` for the metrics) to that runner and word the
report it gives back: every file effect in the user's home is the runner's, as the user. `run`
and an in-place `restore` hold the reconciler's host lock, so an apply and a backup never stop
or start the same gateway at once. Each backup, verify and restore appends a line to `backups.jsonl` in
the state directory (what `status` reads for freshness); never a secret.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.app.context import EXIT_FAILED, EXIT_OK, AppContext, Failed, Output
from reconciler.app.host_lock import host_lock
from reconciler.app.specs import load
from reconciler.core.day2 import BackupReport, RestoreReport, VerifyReport
from reconciler.facts.backup import RECORDS as RECORDS
from reconciler.facts.backup import BackupRecord as BackupRecord
from reconciler.facts.backup import parse_records
from reconciler.frozen import frozen
from reconciler.gateway import backup as plan

if TYPE_CHECKING:
    from reconciler.core.action import Operation
    from reconciler.core.host import HostContext
    from reconciler.shell.restic import Restic
    from reconciler.spec.model import Spec
    from reconciler.unattended.place import StatePlace

LOCK_TIMEOUT_S = 600.0
CHANNEL_WARNING = (
    "warning: restoring is time travel for channel credentials with ratchets (WhatsApp, Signal "
    "sessions): if they were used after this snapshot, re-pair those channels"
)


@frozen
class Session:
    """Everything a backup command needs, checked."""

    spec: Spec
    host: HostContext
    restic: Restic
    targets: tuple[plan.ProfileBackup, ...]

    def argv(self, *args: str) -> tuple[str, ...]:
        return (*plan.base_argv(self.restic.program, self.restic.repo), *args)


def open_session(ctx: AppContext, spec_path: Path, profile: str | None = None) -> Session:
    """The checked session, or Failed naming what is missing (nothing has run)."""
    from reconciler.app.specs import profile_named
    from reconciler.facts.programs import locate
    from reconciler.shell.restic import Restic, secret_problems
    from reconciler.shell.runner import HostRunner

    spec = load(ctx, spec_path)
    if spec.backup is None:
        raise Failed(f"{spec_path}: the spec has no backup section (see docs/backups.md)")
    if profile is not None:  # before anything else is checked, as every command does
        profile_named(spec, spec_path, profile, "--profile")
    host = ctx.discover_host(spec)
    program = locate("restic", host)
    if program is None:
        raise Failed(
            "restic is not installed: install it with `apt-get install restic` "
            "(the reconciler never downloads it)"
        )
    repo = plan.repository(spec.backup, host)
    problems = secret_problems(repo, host)
    if problems:
        raise Failed("; ".join(problems))
    runner = ctx.make_runner(host, True)
    assert isinstance(runner, HostRunner)  # a backup writes: never a read-only runner
    restic = Restic(program, repo, runner)
    try:
        restic.check_environment()
    except (OSError, ValueError) as exc:
        raise Failed(f"environment_file: {exc}") from None
    version = restic.run((program, "version"), mutating=False, timeout_s=20)
    found = plan.restic_version(version.stdout)
    if found is None or found[:2] < plan.MIN_RESTIC:
        raise Failed(
            f"{program}: needs restic {'.'.join(map(str, plan.MIN_RESTIC))} or newer, found "
            f"{version.stdout.strip() or version.summary()}"
        )
    targets = plan.profile_backups(spec, host)
    if profile is not None:
        targets = tuple(t for t in targets if t.profile == profile)
        if not targets:
            names = ", ".join(t.profile for t in plan.profile_backups(spec, host))
            raise Failed(f"profile {profile!r} is not backed up by this spec (backed up: {names})")
    return Session(spec, host, restic, targets)


def repository_state(session: Session) -> str:
    """ok, absent, wrong-password or error (`restic cat config`)."""
    result = session.restic.run(session.argv("cat", "config"), mutating=False, timeout_s=120)
    return plan.repository_state(result.exit_code, result.stderr)


def _require_repository(session: Session) -> None:
    state = repository_state(session)
    if state == "absent":
        raise Failed(
            f"no restic repository at {session.restic.repo.location}: "
            "run `reconciler apply SPEC` (or `reconciler backup init SPEC`) first"
        )
    if state == "wrong-password":
        raise Failed(
            f"the password in {session.restic.repo.password_file} does not open the repository "
            f"at {session.restic.repo.location} (it is never re-initialised)"
        )
    if state != "ok":
        raise Failed(f"cannot open the repository at {session.restic.repo.location}")


# --- records -----------------------------------------------------------------------------


def append_record(place: StatePlace, record: BackupRecord) -> None:
    """Append one record to backups.jsonl in the host's place (as its account), through the
    record store (system/records.py)."""
    place.append_line(RECORDS, json.dumps(asdict(record), sort_keys=True))


def read_records(place: StatePlace) -> list[BackupRecord]:
    """Every record, oldest first (rotated files included; lines that are not records skipped),
    read through the one reader of backups.jsonl (facts/backup.parse_records), the plan's
    backup history probe's."""
    return parse_records(place.record_lines(RECORDS))


def freshness(records: list[BackupRecord]) -> dict[str, dict[str, str | None]]:
    """Per profile: the end of the last successful backup and of the last passed verify."""
    out: dict[str, dict[str, str | None]] = {}
    for record in records:
        entry = out.setdefault(record.profile, {"backup": None, "verify": None})
        if record.ok and record.kind in entry:
            entry[record.kind] = record.end
    return out


# --- lock ---------------------------------------------------------------------------------


# --- use cases ----------------------------------------------------------------------------


def init(ctx: AppContext, spec_path: Path) -> int:
    """Create the repository when absent; an existing one is left alone (never re-initialised)."""
    session = open_session(ctx, spec_path)
    state = repository_state(session)
    location = session.restic.repo.location
    if state == "ok":
        ctx.echo(f"repository {location} exists and opens with the password file; nothing to do")
        return EXIT_OK
    if state != "absent":
        _require_repository(session)  # raises with the reason
    result = session.restic.run(session.argv("init"), timeout_s=600)
    if not result.ok:
        raise Failed(f"restic init {location}: {result.summary()}")
    ctx.echo(f"initialised restic repository {location}")
    return EXIT_OK


class JsonLines:
    """`--log-format json`: every line a JSON object on stdout (`event`: "message" for what the
    text format prints, "backup" per profile, "summary" at the end), secrets masked."""

    def __init__(self, inner: Output) -> None:
        self.inner = inner

    def echo(self, text: str = "", *, nl: bool = True, color: bool = False) -> None:
        self.event({"event": "message", "level": "info", "message": text})

    def error(self, text: str) -> None:
        self.event({"event": "message", "level": "error", "message": text})

    def event(self, data: dict[str, Any]) -> None:
        from reconciler.core.secrets import mask_secrets

        line = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
        self.inner.echo(mask_secrets(line))


def run(
    ctx: AppContext, spec_path: Path, profile: str | None = None, log_format: str = "text"
) -> int:
    """Back up every selected profile (what the backup timer runs), under the host lock; then
    the metrics textfile when the spec has `metrics`."""
    from dataclasses import replace

    lines = JsonLines(ctx.output) if log_format == "json" else None
    if lines is not None:
        ctx = replace(ctx, output=lines)
    session = open_session(ctx, spec_path, profile)
    _require_repository(session)
    failed = 0
    with host_lock(ctx, session.host.user, f"reconciler backup run {spec_path}", LOCK_TIMEOUT_S):
        for target in session.targets:
            record = _back_up(ctx, session, target)
            append_record(_place(ctx, session), record)
            if lines is not None:
                lines.event({"event": "backup", **asdict(record)})
            failed += not record.ok
    if session.spec.metrics is not None:
        _write_metrics(ctx, session, _place(ctx, session))
    if lines is not None:
        lines.event(
            {
                "event": "summary",
                "command": "backup run",
                "result": "failed" if failed else "ok",
                "profiles": len(session.targets),
                "failed": failed,
            }
        )
    return EXIT_FAILED if failed else EXIT_OK


def _place(ctx: AppContext, session: Session) -> StatePlace:
    """The host's one state place (unattended/place.py): the spec user's, also for root."""
    from reconciler.unattended.place import state_place

    return state_place(session.host, ctx.state_dir())


def _write_metrics(ctx: AppContext, session: Session, place: StatePlace) -> None:
    """`reconciler-backup.prom` beside apply's metrics: each backed-up profile's last success
    (from the records), written by the session's runner (`WriteTextfile`: as the spec's user,
    the folder is theirs); a failure to write is a warning, never the backup's failure."""
    from datetime import datetime

    from reconciler.core.action import WriteTextfile
    from reconciler.unattended import metrics

    spec = session.spec
    assert spec.metrics is not None
    latest = freshness(read_records(place))
    names = {p.name for p in spec.backed_up_profiles()}
    last = {
        name: datetime.fromisoformat(end).timestamp()
        for name, entry in latest.items()
        if name in names and (end := entry.get("backup"))
    }
    directory = Path(spec.metrics.textfile_dir)
    text = metrics.render_backup(last)
    done = session.restic.runner.execute(WriteTextfile(directory, metrics.BACKUP_FILE_NAME, text))
    if not done.ok:
        ctx.error(f"warning: could not write the backup metrics in {directory}: {done.detail}")


def _back_up(ctx: AppContext, session: Session, target: plan.ProfileBackup) -> BackupRecord:
    """One profile's backup through the runner (`BackupProfile`), worded and recorded."""
    start = ctx.timestamp()
    report = _report(
        session,
        plan.backup_operation(session.spec, session.restic.program, session.restic.repo, target),
    )
    assert isinstance(report, BackupReport)
    if report.missing:
        ctx.error(f"{target.profile}: nothing to back up ({', '.join(map(str, target.paths))})")
        return BackupRecord("backup", target.profile, start, ctx.timestamp(), False)
    if report.problem:
        raise Failed(f"{target.profile}: {report.problem}")
    if report.start_error:
        ctx.error(f"{target.profile}: {report.start_error}")
    assert report.backup is not None
    result = report.backup
    summary = plan.backup_summary(result.stdout)
    # restic exits 3 when some files could not be read: the snapshot exists but is incomplete.
    ok = result.ok and bool(summary)
    detail = {k: summary[k] for k in _SUMMARY_KEYS if k in summary}
    snapshot = str(summary.get("snapshot_id")) if summary.get("snapshot_id") else None
    downtime = report.downtime_s
    if ok:
        down = f", gateway down {downtime:.1f} s" if downtime is not None else ""
        ctx.echo(
            f"{target.profile}: snapshot {snapshot}: {detail.get('files_new', 0)} new, "
            f"{detail.get('files_changed', 0)} changed, {detail.get('files_unmodified', 0)} "
            f"unchanged files, {detail.get('data_added', 0)} bytes added{down}"
        )
        if report.forget is not None and not report.forget.ok:
            ctx.error(f"{target.profile}: restic forget --prune failed: {report.forget.summary()}")
            ok = False
    else:
        ctx.error(f"{target.profile}: restic backup failed: {result.summary()}")
    return BackupRecord(
        "backup", target.profile, start, ctx.timestamp(), ok, snapshot, downtime, detail
    )


_SUMMARY_KEYS = (
    "files_new",
    "files_changed",
    "files_unmodified",
    "data_added",
    "total_files_processed",
    "total_bytes_processed",
    "total_duration",
)


def _report(session: Session, operation: Operation) -> BackupReport | RestoreReport | VerifyReport:
    """Carry out one day-2 operation through the session's runner (the AppContext's); its
    report says what happened (core/day2.py)."""
    done = session.restic.runner.execute(operation)
    if done.backup is None:  # the runner itself failed (an OSError of ours)
        raise Failed(f"{operation.describe()}: {done.detail}")
    return done.backup


def snapshots(session: Session) -> tuple[plan.Snapshot, ...]:
    """Every snapshot of the repository, oldest first."""
    result = session.restic.run(session.argv("snapshots", "--json"), mutating=False)
    if not result.ok:
        raise Failed(f"restic snapshots: {result.summary()}")
    return plan.parse_snapshots(result.stdout)


def list_snapshots(ctx: AppContext, spec_path: Path, profile: str | None, as_json: bool) -> int:
    """The snapshots of the backed-up profiles of this host, oldest first."""
    session = open_session(ctx, spec_path, profile)
    _require_repository(session)
    names = {t.profile for t in session.targets}
    host_name = session.spec.host.name
    mine = [s for s in snapshots(session) if s.profile in names and s.hostname == host_name]
    if as_json:
        ctx.echo(json.dumps([asdict(s) | {"profile": s.profile} for s in mine], indent=2))
        return EXIT_OK
    if not mine:
        ctx.echo("no snapshots yet")
    for snap in mine:
        ctx.echo(f"{snap.short_id}  {snap.time[:19].replace('T', ' ')}Z  {snap.profile}")
    return EXIT_OK


def _pick(session: Session, target: plan.ProfileBackup, wanted: str | None) -> plan.Snapshot:
    """The snapshot `wanted` (an id or its prefix) of this profile, or its latest on this host."""
    mine = [s for s in snapshots(session) if s.profile == target.profile]
    if wanted is not None:
        found = [s for s in mine if s.id.startswith(wanted)]
        if len(found) != 1:
            raise Failed(
                f"{target.profile}: {len(found) or 'no'} snapshots of this profile match "
                f"{wanted!r} (`reconciler backup list SPEC` shows them)"
            )
        return found[0]
    latest = plan.latest_per_profile(mine, session.spec.host.name).get(target.profile)
    if latest is None:
        raise Failed(f"{target.profile}: no snapshot of this profile on this host yet")
    return latest


def verify(ctx: AppContext, spec_path: Path, profile: str | None, subset: str) -> int:
    """Restore each profile's latest snapshot into a temporary directory and compare every file
    with the snapshot's listing, then `restic check --read-data-subset SUBSET`."""
    session = open_session(ctx, spec_path, profile)
    _require_repository(session)
    failures = 0
    for target in session.targets:
        start = ctx.timestamp()
        snap = _pick(session, target, None)
        restic = session.restic
        report = _report(
            session, plan.verify_operation(restic.program, restic.repo, target.profile, snap)
        )
        assert isinstance(report, VerifyReport)
        ok = report.ok
        for problem in report.problems[:20]:
            ctx.error(f"{target.profile}: {problem}")
        if ok:
            ctx.echo(f"{target.profile}: snapshot {snap.short_id} restores, every file matches")
        append_record(
            _place(ctx, session),
            BackupRecord("verify", target.profile, start, ctx.timestamp(), ok, snap.id),
        )
        failures += not ok
    check = session.restic.run(session.argv("--no-cache", "check", "--read-data-subset", subset))
    if not check.ok:
        ctx.error(f"restic check --read-data-subset {subset} failed: {check.summary()}")
        failures += 1
    else:
        ctx.echo(f"restic check --read-data-subset {subset}: no errors")
    if failures:
        ctx.error("VERIFY FAILED: the backups above cannot be trusted")
        return EXIT_FAILED
    return EXIT_OK


def restore(
    ctx: AppContext,
    spec_path: Path,
    profile: str,
    snapshot: str | None,
    target_dir: Path | None,
    in_place: bool,
) -> int:
    """Restore a snapshot of `profile`: into a fresh staging directory, or in place."""
    session = open_session(ctx, spec_path, profile)
    _require_repository(session)
    (target,) = session.targets
    snap = _pick(session, target, snapshot)
    if in_place:
        if target_dir is not None:
            raise Failed("--in-place and --into exclude each other")
        with host_lock(
            ctx,
            session.host.user,
            f"reconciler backup restore --in-place {spec_path}",
            LOCK_TIMEOUT_S,
        ):
            return _restore_in_place(ctx, session, target, snap)
    stamp = ctx.now().strftime("%Y%m%dT%H%M%SZ")
    staging = target_dir or (
        _place(ctx, session).directory / "restores" / f"{profile}-{snap.short_id}-{stamp}"
    )
    restic = session.restic
    report = _report(
        session,
        plan.restore_operation(restic.program, restic.repo, snap.id, staging, _owner(session)),
    )
    assert isinstance(report, RestoreReport)
    if report.problem:
        raise Failed(report.problem)
    assert report.restore is not None
    if not report.restore.ok:
        raise Failed(f"restic restore {snap.short_id}: {report.restore.summary()}")
    ctx.echo(f"{profile}: snapshot {snap.short_id} ({snap.time[:19]}Z) restored into {staging}")
    ctx.echo("the live state was not touched; `--in-place` replaces it")
    return EXIT_OK


def _restore_in_place(
    ctx: AppContext, session: Session, target: plan.ProfileBackup, snap: plan.Snapshot
) -> int:
    start = ctx.timestamp()
    stamp = ctx.now().strftime("%Y%m%dT%H%M%SZ")
    for path in (Path(p) for p in snap.paths):
        if path not in target.paths:
            raise Failed(f"snapshot {snap.short_id} holds {path}, not a path of {target.profile}")
    restic = session.restic
    operation = plan.restore_in_place_operation(
        session.spec, restic.program, restic.repo, target, snap, stamp, _owner(session)
    )
    report = _report(session, operation)
    assert isinstance(report, RestoreReport)
    if report.problem:
        raise Failed(report.problem)
    assert report.restore is not None
    if report.restored:
        ctx.echo(
            f"{target.profile}: snapshot {snap.short_id} ({snap.time[:19]}Z) restored in place"
        )
        for moved_path in report.aside:
            ctx.echo(f"  the state before the restore is kept at {moved_path}")
    elif report.fix_error:
        ctx.error(f"{target.profile}: {target.state}: {report.fix_error}")
    else:
        ctx.error(f"{target.profile}: restic restore failed: {report.restore.summary()}")
    if report.start_error:
        ctx.error(f"{target.profile}: {report.start_error}")
    if not report.stopped:
        ctx.echo(f"{target.profile}: the gateway was not running; start it with apply")
    elif not report.healthy:
        ctx.error(f"{target.profile}: the gateway does not answer on port {target.port}")
    ctx.error(CHANNEL_WARNING)
    append_record(
        _place(ctx, session),
        BackupRecord(
            "restore",
            target.profile,
            start,
            ctx.timestamp(),
            report.ok,
            snap.id,
            report.downtime_s,
        ),
    )
    return EXIT_OK if report.ok else EXIT_FAILED


def _owner(session: Session) -> str | None:
    """Whose the restored directories are: the spec's user."""
    return session.host.user.name if session.host.user is not None else None


# --- freshness (status) ------------------------------------------------------------------


@frozen
class Freshness:
    """One profile's backup freshness: its last successful backup and last passed verify."""

    profile: str
    last_backup: str | None
    last_verified: str | None
    stale: bool  # no backup yet, or the last is older than twice the schedule
    last_failure: str | None = None  # the end of a failed backup run after the last success


def schedule_period_s(spec: Spec) -> int:
    """The time between two scheduled backups (the calendar's typical period)."""
    assert spec.backup is not None
    return plan.schedule_period_s(spec.backup)


def freshness_of(spec: Spec, records: list[BackupRecord], now_s: float) -> tuple[Freshness, ...]:
    """Per backed-up profile, from the records (pure)."""
    assert spec.backup is not None
    latest = freshness(records)
    limit = plan.stale_after_s(spec.backup)
    failed: dict[str, str] = {}
    for record in records:  # oldest first: a success clears an earlier failure
        if record.kind == "backup":
            if record.ok:
                failed.pop(record.profile, None)
            else:
                failed[record.profile] = record.end
    out = []
    for profile in spec.backed_up_profiles():
        entry = latest.get(profile.name, {})
        last = entry.get("backup")
        age = plan.backup_age_s(last, now_s)
        stale = age is None or age > limit
        out.append(
            Freshness(profile.name, last, entry.get("verify"), stale, failed.get(profile.name))
        )
    return tuple(out)


def status_lines(spec: Spec, place: StatePlace, now_s: float) -> tuple[list[str], list[Any]]:
    """`status`'s backup section: text lines and the JSON list ([] without a backup section)."""
    if spec.backup is None:
        return [], []
    rows = freshness_of(spec, read_records(place), now_s)
    limit = plan.stale_after_s(spec.backup)
    lines = ["backups:"]
    for row in rows:
        stale = f"  STALE (older than {limit // 3600} h)" if row.stale else ""
        failed = f"; the last run FAILED at {row.last_failure}" if row.last_failure else ""
        lines.append(
            f"  {row.profile}: last backup {row.last_backup or 'never'}, last verified restore "
            f"{row.last_verified or 'never'}{stale}{failed}"
        )
    return lines, [asdict(row) for row in rows]
