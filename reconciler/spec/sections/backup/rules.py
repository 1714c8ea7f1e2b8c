"""The `backup:` section's semantic rules: what its schema fragment cannot say."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from reconciler.spec.calendar import EXAMPLES as CALENDAR_EXAMPLES
from reconciler.spec.calendar import check_calendar
from reconciler.spec.duration import parse_duration
from reconciler.spec.rules import (
    Issue,
    Rule,
    as_int,
    canonical,
    did_you_mean,
    get,
    names,
    profiles,
)
from reconciler.spec.yaml_source import Document, show

# Backends restic accepts as `<scheme>:...`; anything else must be a local absolute or ~/ path.
RESTIC_BACKENDS = ("local", "sftp", "rest", "s3", "b2", "azure", "gs", "swift", "rclone")


def _backup(doc: Document) -> dict[str, Any]:
    section = get(doc.data, "backup")
    return section if isinstance(section, dict) else {}


def backup_schedule(doc: Document) -> Iterator[Issue]:
    """backup.schedule is an interval longer than zero or a calendar expression."""
    value = _backup(doc).get("schedule")
    path = ("backup", "schedule")
    hint = f"write an interval like 6h or 1d, or a calendar expression like {CALENDAR_EXAMPLES}"
    number = None if isinstance(value, float) else as_int(value)
    if number is not None:
        if number <= 0:
            yield Issue(path, f"{show(value)} is not a positive interval", hint)
        return
    if not isinstance(value, str):
        return
    try:
        seconds = parse_duration(value)
    except ValueError:
        problem = check_calendar(value)
        if problem is not None:
            yield Issue(
                path, f"{show(value)} is neither an interval nor a calendar: {problem}", hint
            )
        return
    if seconds <= 0:
        yield Issue(path, f"{show(value)} is not a positive interval", hint)


def backup_profiles(doc: Document) -> Iterator[Issue]:
    """backup.profiles names defined profiles, each once."""
    names = _backup(doc).get("profiles")
    defined = profiles(doc)
    if not isinstance(names, list) or not defined:
        return
    seen: set[str] = set()
    for i, name in enumerate(names):
        if not isinstance(name, str):
            continue
        if name not in defined:
            hint = did_you_mean(name, defined) or "defined profiles: " + ", ".join(
                f"`{p}`" for p in defined
            )
            yield Issue(("backup", "profiles", i), f"no profile named {show(name)}", hint)
        elif name in seen:
            yield Issue(("backup", "profiles", i), f"profile {show(name)} is listed twice", None)
        seen.add(name)


def backup_repository(doc: Document) -> Iterator[Issue]:
    """backup.repository is a restic backend URL or an absolute (or ~/) local path."""
    value = _backup(doc).get("repository")
    if not isinstance(value, str) or not value.strip():
        return
    scheme = value.split(":", 1)[0] if ":" in value and not value.startswith(("/", "~")) else None
    if scheme is not None:
        if scheme not in RESTIC_BACKENDS:
            yield Issue(
                ("backup", "repository"),
                f"{show(value)} names the unknown restic backend {show(scheme)}",
                "restic backends: "
                + ", ".join(f"{b}:" for b in RESTIC_BACKENDS)
                + "; a local repository is an absolute path or ~/path",
            )
        return
    if not value.startswith(("/", "~/")):
        yield Issue(
            ("backup", "repository"),
            f"{show(value)} is a relative path",
            "write a local repository as /absolute/path or ~/path (the timer does not run in "
            "the spec's folder)",
        )


def _backed_up_dirs(doc: Document) -> Iterator[tuple[str, str, str]]:
    """(profile, what, path) of the state directory and workspace of every backed-up profile."""
    table = names(doc)
    wanted = _backup(doc).get("profiles")
    for name, body in profiles(doc).items():
        if isinstance(wanted, list) and name not in wanted:
            continue
        state = get(body, "state_dir")
        workspace = get(body, "workspace")
        yield name, "state directory", state if isinstance(state, str) else table.state_dir(name)
        yield name, "workspace", workspace if isinstance(workspace, str) else table.workspace(name)


def _repository_inside(path: str, directory: str, user: str) -> bool:
    path, directory = canonical(path, user), canonical(directory, user)
    return path == directory or path.startswith(directory if directory == "/" else directory + "/")


def backup_repository_outside_state(doc: Document) -> Iterator[Issue]:
    """A local repository is not inside what it backs up (it would back itself up, and a wiped
    state directory would take its own backups with it)."""
    value = _backup(doc).get("repository")
    if not isinstance(value, str):
        return
    local = value.removeprefix("local:")
    if not local.startswith(("/", "~/")):
        return
    user = get(doc.data, "host", "user")
    user = user if isinstance(user, str) else ""
    for name, what, directory in _backed_up_dirs(doc):
        if _repository_inside(local, directory, user):
            yield Issue(
                ("backup", "repository"),
                f"{show(value)} is inside the {what} of profile {show(name)} ({directory}), "
                "which it backs up",
                "keep the repository outside every backed-up state directory and workspace, "
                "best on another disk or host (sftp:, rest:, s3:)",
            )


def backup_retention(doc: Document) -> Iterator[Issue]:
    """A retention policy keeps something (restic refuses to forget with an empty policy)."""
    retention = _backup(doc).get("retention")
    if not isinstance(retention, dict):
        return
    values = [as_int(v) for v in retention.values()]
    if all(v is not None and v == 0 for v in values):
        yield Issue(
            ("backup", "retention"),
            "the retention policy keeps no snapshot",
            "set at least one of keep_last, keep_daily, keep_weekly, keep_monthly above 0, "
            "or remove retention to keep every snapshot",
        )


def backup_schedule_elapses(doc: Document) -> Iterator[Issue]:
    """A calendar backup.schedule fires at least once more: systemd accepts `*-02-30` or a date
    in the past, and the timer then never runs (`Next elapse: never`)."""
    from datetime import UTC, datetime

    from reconciler.spec.calendar import elapses

    value = _backup(doc).get("schedule")
    if not isinstance(value, str) or check_calendar(value) is not None:
        return  # absent, an interval, or backup_schedule's error
    try:
        parse_duration(value)
        return
    except ValueError:
        pass
    if not elapses(value, datetime.now(UTC).date()):
        yield Issue(
            ("backup", "schedule"),
            f"{show(value)} never elapses (no such day, or only days in the past): the timer "
            "would never run",
            f"write a schedule that repeats, like {CALENDAR_EXAMPLES}",
        )


RULES: tuple[Rule, ...] = (
    backup_schedule,
    backup_profiles,
    backup_repository,
    backup_repository_outside_state,
    backup_retention,
    backup_schedule_elapses,
)
