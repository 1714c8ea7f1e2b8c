"""Carrying out the day-2 backup operations (`BackupProfile`, `RestoreSnapshot`,
`RestoreInPlace`, `VerifySnapshot`): every command through the runner (restic and `systemctl --user` as the
spec's user), every file effect in the user's home as the user (the runner's own file
operations, `MoveAside` and `EnsureDirectory`, and reads in a child dropped to the user), so a
symlink the user planted cannot point root at anything the user could not touch themselves.

What happened comes back as a report (core/day2.py); the use case (app/backup.py) words it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from reconciler.core.action import (
    BackupProfile,
    EnsureDirectory,
    MoveAside,
    RestoreInPlace,
    RestoreSnapshot,
    VerifySnapshot,
    WaitForPort,
)
from reconciler.core.command import Command
from reconciler.core.day2 import BackupReport, RestoreReport, VerifyReport
from reconciler.core.execution import OperationRunner
from reconciler.gateway.backup import ListedFile, backup_summary, parse_ls
from reconciler.system.as_user import acting_account, call_as

SYSTEMCTL_TIMEOUT_S = 120.0


def run_backup(runner: OperationRunner, op: BackupProfile) -> BackupReport:
    """One profile's snapshot (see `BackupProfile`)."""
    existing = _as_user(runner, partial(_existing, op.paths))
    if not existing:
        return BackupReport(missing=True)
    stopped_at = None
    if op.unit is not None:
        stopped_at, problem = _stop(runner, op.unit)
        if problem:
            return BackupReport(problem=problem)
    try:
        backup = runner.run(replace(op.backup, argv=(*op.backup.argv, *existing)))
    finally:
        downtime, start_error = _start(runner, op.unit, stopped_at)
    forget = None
    # restic exits 3 when some files could not be read: the snapshot exists but is incomplete,
    # and nothing is forgotten on the strength of it.
    if op.forget is not None and backup.ok and backup_summary(backup.stdout):
        forget = runner.run(op.forget)
    return BackupReport(False, "", backup, forget, downtime, start_error)


def run_restore(runner: OperationRunner, op: RestoreSnapshot) -> RestoreReport:
    """A snapshot into a fresh directory (see `RestoreSnapshot`)."""
    made = runner.execute(EnsureDirectory(op.directory, 0o700, op.owner))
    if not made.ok:
        return RestoreReport(problem=f"{made.operation.describe()}: {made.detail}")
    if _as_user(runner, partial(_has_entries, str(op.directory))):
        return RestoreReport(problem=f"{op.directory} is not empty: restore into a fresh directory")
    return RestoreReport(restore=runner.run(op.restore))


def run_restore_in_place(runner: OperationRunner, op: RestoreInPlace) -> RestoreReport:
    """A snapshot over the live state (see `RestoreInPlace`). A failure before restic runs
    leaves the gateway stopped: the state may already be half moved aside."""
    stopped_at, problem = _stop(runner, op.unit)
    if problem:
        return RestoreReport(problem=f"{op.profile}: {problem}")
    aside = []
    for path in op.paths:
        # As the user: a rename in the user's home, never following the path itself.
        moved = runner.execute(MoveAside(path, op.suffix, op.owner))
        if not moved.ok:
            return RestoreReport(problem=f"{op.profile}: cannot move {path} aside: {moved.detail}")
        if moved.detail:
            aside.append(Path(moved.detail))
    restore = runner.run(op.restore)
    fix_error = ""
    if restore.ok:
        # restic ran as the user, so what it wrote is the user's already; the state directory
        # gets 0700 as the user, and a symlink restored in its place is refused, not followed.
        fixed = runner.execute(EnsureDirectory(op.state, 0o700, op.owner))
        fix_error = "" if fixed.ok else fixed.detail
    downtime, start_error = _start(runner, op.unit, stopped_at)
    healthy = stopped_at is None or runner.execute(WaitForPort(op.port, op.start_timeout_s)).ok
    return RestoreReport(
        "",
        restore,
        tuple(aside),
        fix_error,
        stopped_at is not None,
        start_error,
        downtime,
        healthy,
    )


def run_verify(runner: OperationRunner, op: VerifySnapshot) -> VerifyReport:
    """A snapshot restored into a scratch directory and compared (see `VerifySnapshot`);
    restic's own --verify compares every file's content with its blob checksums. The scratch
    directory is made, read and removed as the spec's user (restic writes it as the user)."""
    root = Path(_as_user(runner, partial(tempfile.mkdtemp, prefix="reconciler-verify-")))
    try:
        restored = runner.run(replace(op.restore, argv=(*op.restore.argv, "--target", str(root))))
        if not restored.ok:
            why = f"restic restore --verify of {op.short_id} failed: {restored.summary()}"
            return VerifyReport((why,))
        listing = runner.run(op.listing)
        if not listing.ok:
            return VerifyReport((f"restic ls {op.short_id} failed: {listing.summary()}",))
        files = parse_ls(listing.stdout)
        return VerifyReport(tuple(_as_user(runner, partial(compare_tree, root, files))))
    finally:
        _as_user(runner, partial(shutil.rmtree, str(root), True))


def compare_tree(root: Path, files: tuple[ListedFile, ...]) -> list[str]:
    """Every listed file under `root`: present, same size, same permission bits (lstat only;
    run as the user who restored them)."""
    problems = []
    for listed in files:
        path = root / listed.path.lstrip("/")
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            problems.append(f"{listed.path}: missing after restore")
            continue
        if st.st_size != listed.size:
            problems.append(f"{listed.path}: {st.st_size} bytes, the snapshot says {listed.size}")
        if st.st_mode & 0o7777 != listed.mode:
            problems.append(
                f"{listed.path}: mode {st.st_mode & 0o7777:04o}, the snapshot says "
                f"{listed.mode:04o}"
            )
    if not files:
        problems.append("the snapshot lists no file")
    return problems


def _systemctl(*args: str) -> Command:
    """`systemctl --user ARGS` as the spec's user (stop/start a gateway around a copy)."""
    return Command(
        ("systemctl", "--user", *args), scope="user", mutating=True, timeout_s=SYSTEMCTL_TIMEOUT_S
    )


def _stop(runner: OperationRunner, unit: str) -> tuple[float | None, str]:
    """Stop `unit` when it runs: (the monotonic time it stopped, or None; why it could not)."""
    if not runner.run(_systemctl("is-active", "--quiet", unit)).ok:
        return None, ""
    result = runner.run(_systemctl("stop", unit))
    if not result.ok:
        return None, f"cannot stop {unit}: {result.summary()}"
    return time.monotonic(), ""


def _start(
    runner: OperationRunner, unit: str | None, stopped_at: float | None
) -> tuple[float | None, str]:
    """Start `unit` again when we stopped it: (the downtime in seconds, why it did not start)."""
    if unit is None or stopped_at is None:
        return None, ""
    result = runner.run(_systemctl("start", unit))
    downtime = round(time.monotonic() - stopped_at, 3)
    return downtime, "" if result.ok else f"cannot start {unit} again: {result.summary()}"


def _as_user(runner: OperationRunner, work: Callable[[], Any]) -> Any:
    """`work()` with the spec user's permissions when we are root (system/as_user.py)."""
    return call_as(acting_account(runner.host), work, 600.0)


def _existing(paths: tuple[Path, ...]) -> list[str]:
    # JSON back from the child (system/as_user.py): the paths as text
    return [str(p) for p in paths if p.exists()]


def _has_entries(directory: str) -> bool:
    with os.scandir(directory) as entries:
        return any(True for _ in entries)
