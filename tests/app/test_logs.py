"""`reconciler logs`: the profile's user journal as the spec's user (also as root), and the
reconciler's timer runs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakehost import FakeHost
from review_cli import SPEC, FakeHostCli

OPS = "clawdbot-gateway-ops.service"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHost]:
    monkeypatch.chdir(tmp_path)
    host = FakeHost(tmp_path / "host")
    Path("vm102.yaml").write_text(SPEC)
    host.add_journal(OPS, "[gateway] listening on ws://127.0.0.1:18809", "[ws] client connected")
    host.add_journal("reconciler.service", "run converged: 0 actions")
    yield host
    host.close()


def test_profile_journal_as_the_user(fake: FakeHost) -> None:
    result = FakeHostCli(fake)("logs", "vm102.yaml", "ops", "-n", "1", "--since", "1h ago")
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    assert line.endswith(" vm102 clawdbot-gateway-ops[1234]: [ws] client connected")
    (call,) = fake.calls()
    assert call["argv"] == [
        "journalctl", "--user", "-u", OPS, "--no-pager", "-n", "1", "--since", "1h ago",
    ]  # fmt: skip
    assert call["caller"] == "user"


@pytest.mark.skipif(os.geteuid() != 0, reason="acting as root on the fake host needs root")
def test_profile_journal_as_root_runs_as_the_user(fake: FakeHost) -> None:
    result = FakeHostCli(fake, "root")("logs", "vm102.yaml", "ops", "-f")
    assert result.exit_code == 0, result.output
    assert "[gateway] listening on ws://127.0.0.1:18809" in result.stdout
    journal, runuser = fake.calls()  # the fake logs runuser after the command it ran
    assert runuser["tool"] == "runuser" and runuser["argv"][1:3] == ["-u", "user"]
    assert journal["argv"] == ["journalctl", "--user", "-u", OPS, "--no-pager", "-f"]
    assert journal["caller"] == "user"  # root's own user journal would be empty


def test_runs_shows_the_timer_journal(fake: FakeHost) -> None:
    result = FakeHostCli(fake)("logs", "vm102.yaml", "--runs")
    assert result.exit_code == 0, result.output
    assert "run converged: 0 actions" in result.stdout
    assert fake.calls()[0]["argv"][:4] == ["journalctl", "--user", "-u", "reconciler.service"]


BACKUP = """
backup:
  repository: ~/backups/gateway
  password_file: ~/.config/restic/password
"""


def test_runs_show_the_backup_runs_too_when_the_spec_backs_up(fake: FakeHost) -> None:
    Path("vm102.yaml").write_text(SPEC + BACKUP)
    fake.add_journal("reconciler-backup.service", "backup run ok: 1 profile(s) backed up")
    fake.add_journal("reconciler.service", "run converged: 1 applied")
    result = FakeHostCli(fake)("logs", "vm102.yaml", "--runs")
    assert result.exit_code == 0, result.output
    assert fake.calls()[0]["argv"][:6] == [
        "journalctl",
        "--user",
        "-u",
        "reconciler.service",
        "-u",
        "reconciler-backup.service",
    ]
    lines = result.stdout.splitlines()
    # interleaved by time, as journalctl does with several units
    assert [line.split(": ", 1)[1] for line in lines] == [
        "run converged: 0 actions",
        "backup run ok: 1 profile(s) backed up",
        "run converged: 1 applied",
    ]


@pytest.mark.parametrize("args", [[], ["ops", "--runs"]])
def test_profile_or_runs(fake: FakeHost, args: list[str]) -> None:
    result = FakeHostCli(fake)("logs", "vm102.yaml", *args)
    assert result.exit_code == 64
    assert result.stderr == "error: name a PROFILE, or pass --runs (not both)\n"
    assert fake.calls() == []


def test_journal_lines_reach_the_terminal_escaped(fake: FakeHost) -> None:
    # A gateway logs what clients send it: a client name with an OSC escape, a forged line.
    fake.add_journal(OPS, "[ws] client \x1b]0;pwned\x07 connected\rreconciler: all good\u202e")
    result = FakeHostCli(fake)("logs", "vm102.yaml", "ops", "-n", "1")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\r" not in result.stdout
    assert "\u202e" not in result.stdout
    assert result.stdout.rstrip("\n").endswith(
        "[ws] client \\x1b]0;pwned\\x07 connected\\rreconciler: all good\\u202e"
    )
