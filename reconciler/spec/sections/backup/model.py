"""The `backup:` section's model: restic backups of the profiles' state, run by a user timer."""

from __future__ import annotations

from typing import Any, Literal

from reconciler.frozen import frozen
from reconciler.spec.duration import parse_duration

Consistency = Literal["stop", "live"]

# Restic exclude patterns the gateway rebuilds by itself: its logs and caches.
DEFAULT_BACKUP_EXCLUDES: tuple[str, ...] = ("*.log", "logs", ".cache", "cache")


# Where the section is in the document, and in the typed Spec (the same names).
MOUNT = ("backup",)


@frozen
class Retention:
    """`restic forget --prune` policy; 0 means the keep_* option is not passed."""

    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0


@frozen
class Backup:
    """Backups of the profiles' state with restic, run by a user timer (`backup:` in the spec).

    `schedule` is either a systemd calendar expression (`schedule_interval_s` None) or an
    interval (`schedule_interval_s` its seconds). The password and environment files are paths
    only: their content is never read into the spec, a plan, a snapshot or a run record.
    """

    repository: str
    password_file: str
    schedule: str = "daily"
    schedule_interval_s: int | None = None
    environment_file: str | None = None
    retention: Retention | None = None  # None: no `restic forget`
    profiles: tuple[str, ...] | None = None  # None: every profile of the spec
    exclude: tuple[str, ...] = DEFAULT_BACKUP_EXCLUDES
    consistency: Consistency = "stop"


def schedule_interval(value: str | int) -> int | None:
    """The seconds of a schedule that is an interval, None for a calendar expression."""
    if isinstance(value, int):
        return value
    try:
        return parse_duration(value)
    except ValueError:
        return None


def build(section: dict[str, Any]) -> Backup:
    """Validated `backup:` data -> Backup (absent fields keep the dataclass defaults)."""
    fields: dict[str, Any] = {
        name: section[name]
        for name in ("repository", "password_file", "environment_file", "consistency")
        if name in section
    }
    if "schedule" in section:
        schedule = section["schedule"]
        fields["schedule"] = str(schedule).strip()
        fields["schedule_interval_s"] = schedule_interval(schedule)
    if "retention" in section:
        fields["retention"] = Retention(**section["retention"])
    if "profiles" in section:
        fields["profiles"] = tuple(section["profiles"])
    if "exclude" in section:
        fields["exclude"] = tuple(section["exclude"])
    return Backup(**fields)
