"""The `backup` section: conversion (interval or calendar schedule, defaults, profile selection)
and the calendar subset the spec accepts without systemd. Errors are pinned by the corpus
(tests/data/specs/invalid/backup-*.yaml)."""

from __future__ import annotations

import pytest

from reconciler.spec.calendar import check_calendar, period_s
from reconciler.spec.loader import load_spec_text
from reconciler.spec.model import DEFAULT_BACKUP_EXCLUDES

BASE = """\
apiVersion: reconciler/v1
host: {name: vm102, user: claw}
profiles:
  ops: {port: 18789}
  personal: {port: 18809}
backup:
  repository: ~/backups/gateway
  password_file: ~/.config/restic/password
"""


def test_defaults_back_up_every_profile_daily_with_the_gateway_stopped() -> None:
    spec = load_spec_text(BASE, "s.yaml")
    assert spec.backup is not None
    assert spec.backup.schedule == "daily"
    assert spec.backup.schedule_interval_s is None
    assert spec.backup.consistency == "stop"
    assert spec.backup.exclude == DEFAULT_BACKUP_EXCLUDES
    assert spec.backup.retention is None
    assert [p.name for p in spec.backed_up_profiles()] == ["ops", "personal"]


@pytest.mark.parametrize(
    ("schedule", "interval"),
    [("6h", 21600), ("90", 90), (3600, 3600), ("1d", 86400), ('"*-*-* 03:00"', None)],
)
def test_schedule_is_an_interval_or_a_calendar(schedule: object, interval: int | None) -> None:
    spec = load_spec_text(BASE + f"  schedule: {schedule}\n", "s.yaml")
    assert spec.backup is not None
    assert spec.backup.schedule_interval_s == interval


def test_profiles_select_what_is_backed_up() -> None:
    spec = load_spec_text(BASE + "  profiles: [personal]\n", "s.yaml")
    assert [p.name for p in spec.backed_up_profiles()] == ["personal"]


def test_no_backup_section_backs_up_nothing() -> None:
    spec = load_spec_text(BASE.split("backup:")[0], "s.yaml")
    assert spec.backup is None
    assert spec.backed_up_profiles() == ()


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("daily", 86400),
        ("hourly", 3600),
        ("weekly", 7 * 86400),
        ("*-*-* 03:30", 86400),
        ("*-*-* 00/6:00", 6 * 3600),
        ("*:0/15", 900),
        ("Sun *-*-* 04:00", 7 * 86400),
        ("Mon..Fri 22:30", 86400),
        ("*-*-01 00:00", 31 * 86400),
    ],
)
def test_calendar_periods(expression: str, seconds: int) -> None:
    assert check_calendar(expression) is None
    assert period_s(expression) == seconds


@pytest.mark.parametrize(
    "expression",
    ["", "fortnightly", "*-*-* 24:00", "*-13-* 00:00", "Mon..Xyz 01:00", "*-*-* 1:2:3:4", "a b c"],
)
def test_calendar_refusals_say_why(expression: str) -> None:
    problem = check_calendar(expression)
    assert problem is not None and problem
