"""Status from records, suspension and the timer's facts (pure), and the schedule probe's parser."""

from __future__ import annotations

import json

import pytest

from reconciler.core.command import Command, CommandResult
from reconciler.facts.systemd import UnitStatus, unreachable
from reconciler.unattended.runs import RunRecord
from reconciler.unattended.status import (
    TimerSchedule,
    TimerScheduleProbe,
    build_status,
    render_status,
    status_document,
)
from reconciler.unattended.suspend import Suspension

NOW = 1769421600.0  # 2026-01-26T10:00:00Z
MONO = 5000.0  # seconds since boot, read with NOW

ACTIVE = UnitStatus(
    "reconciler.timer", load_state="loaded", active_state="active", unit_file_state="enabled"
)


def rec(n: int, result: str, **kw: object) -> RunRecord:
    stamp = f"2026-01-26T09:{n:02d}:00+00:00"
    return RunRecord(start=stamp, end=stamp, result=result, **kw)  # type: ignore[arg-type]


def test_last_run_last_success_and_drift() -> None:
    records = [
        rec(1, "converged", applied=2, drift=("linger",)),
        rec(2, "failed", failed=1, drift=("profile[ops].service",), reason="exit 1"),
        rec(3, "locked"),
    ]
    status = build_status(records, None, ACTIVE, TimerSchedule(), now_s=NOW, monotonic_s=MONO)
    assert status.last_run == records[2]
    assert status.last_success == records[0]
    assert status.drift == ("profile[ops].service",)  # a locked run looked at nothing
    assert status.runs == 3


def test_monotonic_next_elapse_is_turned_into_wall_clock_time() -> None:
    schedule = TimerSchedule(next_monotonic_s=MONO + 600, last_trigger_s=NOW - 300)
    status = build_status([], None, ACTIVE, schedule, now_s=NOW, monotonic_s=MONO)
    assert status.timer.next_elapse == "2026-01-26T10:10:00+00:00"
    assert status.timer.last_trigger == "2026-01-26T09:55:00+00:00"
    assert (status.timer.installed, status.timer.enabled, status.timer.active) == (True, True, True)
    text = render_status(status, now_s=NOW)
    assert "Last run:" in text and "never" in text
    assert "next run 2026-01-26T10:10:00+00:00 (in 10min)" in text


def test_realtime_next_elapse_wins_and_inactive_timers_have_none() -> None:
    schedule = TimerSchedule(next_realtime_s=NOW + 60, next_monotonic_s=MONO + 600)
    assert build_status(
        [], None, ACTIVE, schedule, now_s=NOW, monotonic_s=MONO
    ).timer.next_elapse == ("2026-01-26T10:01:00+00:00")
    stopped = UnitStatus("reconciler.timer", load_state="loaded", active_state="inactive")
    assert (
        build_status([], None, stopped, schedule, now_s=NOW, monotonic_s=MONO).timer.next_elapse
        is None
    )


def test_not_installed_unreachable_and_suspended() -> None:
    missing = UnitStatus("reconciler.timer", load_state="not-found", active_state="inactive")
    suspended = Suspension("2026-01-26T08:00:00+00:00", "user", "upgrading node")
    status = build_status([], suspended, missing, None, now_s=NOW, monotonic_s=MONO)
    text = render_status(status, now_s=NOW)
    assert "Timer:" in text and "not installed" in text
    assert "yes, suspended since 2026-01-26T08:00:00+00:00 by user: upgrading node" in text
    down = build_status(
        [], None, unreachable("reconciler.timer", "no manager"), None, now_s=NOW, monotonic_s=MONO
    )
    assert "unknown (no manager)" in render_status(down, now_s=NOW)


def test_json_document_is_stable() -> None:
    records = [
        rec(
            1,
            "converged",
            last_applied_revision="main@sha1:a",
            last_attempted_revision="main@sha1:a",
        )
    ]
    doc = status_document(
        build_status(records, None, ACTIVE, TimerSchedule(), now_s=NOW, monotonic_s=MONO)
    )
    assert set(doc) == {"last_run", "last_success", "drift", "suspended", "timer", "last_applied_revision",
                        "last_attempted_revision", "runs"}  # fmt: skip
    assert doc["last_run"]["result"] == "converged"
    assert doc["last_applied_revision"] == "main@sha1:a"
    json.dumps(doc)


def _result(stdout: str, code: int = 0, stderr: str = "") -> CommandResult:
    command = TimerScheduleProbe().command(None)  # type: ignore[arg-type]
    assert isinstance(command, Command)
    return CommandResult(command, command.argv, code, stdout, stderr)


def test_schedule_probe_parses_systemctl_show() -> None:
    probe = TimerScheduleProbe()
    command = probe.command(None)  # type: ignore[arg-type]
    assert command is not None and command.scope == "user" and not command.mutating
    assert "NextElapseUSecMonotonic" in command.argv[-1]
    parsed = probe.parse(
        _result(
            "NextElapseUSecRealtime=\nNextElapseUSecMonotonic=1h 23min 20.000001s\n"
            "LastTriggerUSec=Mon 2026-01-26 09:55:00.000000 UTC\n"
        )
    )
    assert parsed.next_realtime_s is None
    assert parsed.next_monotonic_s == pytest.approx(5000.000001)
    assert parsed.last_trigger_s == NOW - 300
    # A fake or older systemctl that prints none of them: nothing known, no error.
    assert probe.parse(_result("")) == TimerSchedule()
    down = probe.parse(_result("", 1, "Failed to connect to bus: No such file or directory"))
    assert down.detail and down.next_monotonic_s is None
