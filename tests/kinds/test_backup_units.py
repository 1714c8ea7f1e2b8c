"""The backup service and timer texts: exact, deterministic, calendar or interval, no secret."""

from __future__ import annotations

from pathlib import Path

from reconciler.kinds._backup_units import render_service, render_timer
from reconciler.spec.loader import load_spec_text

HEADER = "# Written by the reconciler from its spec; local edits are replaced on the next apply."
SPEC = """\
apiVersion: reconciler/v1
host: {name: vm102, user: claw}
profiles: {ops: {port: 18789}}
backup:
  repository: ~/backups/gateway
  password_file: ~/.config/restic/password
"""


def _backup(extra: str = ""):  # type: ignore[no-untyped-def]
    backup = load_spec_text(SPEC + extra, "s.yaml").backup
    assert backup is not None
    return backup


def test_service_runs_backup_run_for_the_spec() -> None:
    text = render_service(("/usr/bin/python3", "-m", "reconciler"), Path("/home/claw/my spec.yaml"))
    assert text == "\n".join(
        [
            HEADER,
            "[Unit]",
            "Description=Back up the gateways' state with restic (reconciler backup run)",
            "",
            "[Service]",
            "Type=oneshot",
            'ExecStart=/usr/bin/python3 -m reconciler backup run "/home/claw/my spec.yaml"',
            "Environment=PYTHONUNBUFFERED=1",
            "SyslogIdentifier=reconciler-backup",
            "TimeoutStartSec=6h",
            "Nice=10",
            "IOSchedulingClass=idle",
            "",
        ]
    )


def test_calendar_schedule_is_on_calendar_and_persistent() -> None:
    text = render_timer(_backup('  schedule: "*-*-* 03:30"\n'))
    assert "OnCalendar=*-*-* 03:30\n" in text
    assert "Persistent=true\n" in text
    assert "OnUnitActiveSec" not in text
    assert text == render_timer(_backup('  schedule: "*-*-* 03:30"\n'))


def test_interval_schedule_is_on_unit_active() -> None:
    text = render_timer(_backup("  schedule: 360min\n"))
    assert "OnBootSec=5min\nOnUnitActiveSec=6h\n" in text
    assert "OnCalendar" not in text
    assert "Description=Run reconciler backup run every 6h\n" in text


def test_the_default_schedule_is_daily() -> None:
    assert "OnCalendar=daily\n" in render_timer(_backup())


def test_no_unit_names_the_password() -> None:
    backup = _backup()
    texts = render_service(("reconciler",), Path("/s.yaml")) + render_timer(backup)
    assert "password" not in texts.lower()


def test_short_schedules_get_short_delays() -> None:
    text = render_timer(_backup("  schedule: 20s\n"))
    assert "OnBootSec=20s\nOnUnitActiveSec=20s\nRandomizedDelaySec=2s\n" in text
    daily = render_timer(_backup())
    assert "RandomizedDelaySec=5min\n" in daily
