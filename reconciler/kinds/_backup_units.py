"""The backup kind's units (a private helper of kinds/backup.py): the user service and timer that
run `reconciler backup run`.

`reconciler-backup.service` (Type=oneshot, ExecStart=<program> backup run <spec>, at low CPU and
I/O priority) and `reconciler-backup.timer` (OnCalendar= for a calendar schedule, or
OnBootSec=/OnUnitActiveSec= for an interval; Persistent=true). The texts are pure functions of
the spec and the program that runs it, so the same spec renders the same bytes and a plan can
show them as diffs. Neither file ever holds a secret: restic gets the password file's path on
its own command line at run time (reconciler/gateway/backup.py), not through the unit.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.kinds._systemd import HEADER, systemd_word
from reconciler.spec.duration import format_duration
from reconciler.spec.model import Backup

SERVICE = "reconciler-backup.service"
TIMER = "reconciler-backup.timer"
RUN_TIMEOUT = "6h"
MAX_DELAY_S = 300  # first run after boot, and the random spread of runs: at most 5 min


def _delays(backup: Backup) -> tuple[int, int]:
    """(first run after boot, randomized delay) in seconds: 5 min, or less for short schedules
    (the first run never waits longer than one interval, the spread is a tenth of the period)."""
    from reconciler.spec.calendar import period_s

    interval = backup.schedule_interval_s
    period = interval if interval is not None else period_s(backup.schedule)
    return min(MAX_DELAY_S, period), min(MAX_DELAY_S, period // 10)


def render_service(program: tuple[str, ...], spec_path: Path) -> str:
    """reconciler-backup.service's exact text."""
    argv = (*program, "backup", "run", str(spec_path))
    exec_start = " ".join(systemd_word(word, exec_line=True) for word in argv)
    return (
        "\n".join(
            [
                HEADER,
                "[Unit]",
                "Description=Back up the gateways' state with restic (reconciler backup run)",
                "",
                "[Service]",
                "Type=oneshot",
                f"ExecStart={exec_start}",
                "Environment=PYTHONUNBUFFERED=1",
                "SyslogIdentifier=reconciler-backup",
                f"TimeoutStartSec={RUN_TIMEOUT}",
                # A backup must not slow the gateway it copies (consistency: live).
                "Nice=10",
                "IOSchedulingClass=idle",
            ]
        )
        + "\n"
    )


def render_timer(backup: Backup) -> str:
    """reconciler-backup.timer's exact text."""
    on_boot, spread = _delays(backup)
    if backup.schedule_interval_s is not None:
        every = format_duration(backup.schedule_interval_s)
        when = [f"OnBootSec={format_duration(on_boot)}", f"OnUnitActiveSec={every}"]
        description = f"every {every}"
    else:
        # OnCalendar= takes the expression as is (no quoting); the spec's rules only let
        # through the calendar subset of reconciler/spec/calendar.py.
        when = [f"OnCalendar={backup.schedule}"]
        description = f"on {backup.schedule}"
    return (
        "\n".join(
            [
                HEADER,
                "[Unit]",
                f"Description=Run reconciler backup run {description}",
                "",
                "[Timer]",
                *when,
                f"RandomizedDelaySec={format_duration(spread)}",
                "Persistent=true",
                "",
                "[Install]",
                "WantedBy=timers.target",
            ]
        )
        + "\n"
    )
