from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from reconciler.core.action import EnsureDirectory, RunCommand, WaitForPort, WriteFile
from reconciler.core.command import Command
from reconciler.core.host import Account, HostContext
from reconciler.shell.runner import HostRunner, MutationRefused, ReadOnlyRunner

USER = Account("alice", 1000, 1000, Path("/home/alice"))
ROOT = Account("root", 0, 0, Path("/root"))


def host(invoker: Account, user: Account | None = USER) -> HostContext:
    return HostContext(hostname="h", invoker=invoker, user=user, user_name="alice")


def test_read_only_runner_refuses_mutating_commands_and_cannot_execute() -> None:
    runner = ReadOnlyRunner(host(USER))
    with pytest.raises(MutationRefused):
        runner.run(Command(("true",), mutating=True))
    assert not hasattr(runner, "execute")
    assert runner.log == []


def test_captures_exit_code_stdout_and_stderr() -> None:
    result = ReadOnlyRunner(host(USER)).run(Command(("sh", "-c", "echo out; echo err >&2; exit 3")))
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert result.summary() == "exit 3: err"


def test_missing_program_is_a_fact_not_a_crash() -> None:
    result = ReadOnlyRunner(host(USER)).run(Command(("no-such-program-xyz", "--version")))
    assert result.not_found and result.exit_code is None


def test_timeout_is_reported() -> None:
    result = ReadOnlyRunner(host(USER)).run(Command(("sleep", "5"), timeout_s=0.3))
    assert result.exit_code is None and result.error == "timed out after 0.3 s"
    assert result.duration_s < 3


def test_user_scope_as_root_goes_through_runuser_with_the_session_bus() -> None:
    argv, refusal = ReadOnlyRunner(host(ROOT)).wrap(
        Command(("systemctl", "--user", "show"), scope="user")
    )
    assert refusal is None
    assert argv[:5] == ("runuser", "-u", "alice", "--", "env")
    assert "XDG_RUNTIME_DIR=/run/user/1000" in argv
    assert "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus" in argv
    assert argv[-3:] == ("systemctl", "--user", "show")


def test_user_scope_as_the_user_runs_plainly_and_as_someone_else_is_refused() -> None:
    command = Command(("systemctl", "--user", "show"), scope="user")
    assert ReadOnlyRunner(host(USER)).wrap(command) == (command.argv, None)
    bob = Account("bob", 1001, 1001, Path("/home/bob"))
    _, refusal = ReadOnlyRunner(host(bob)).wrap(command)
    assert refusal and "run as alice or as root" in refusal
    _, refusal = ReadOnlyRunner(host(ROOT, user=None)).wrap(command)
    assert refusal == "user 'alice' does not exist on this host"


def test_root_commands_get_sudo_n_when_not_root(tmp_path: Path) -> None:
    sudo = tmp_path / "sudo"
    sudo.write_text("#!/bin/sh\necho 'sudo: a password is required' >&2\nexit 1\n")
    sudo.chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}")
    runner = HostRunner(host(USER), env=env)
    command = Command(("loginctl", "enable-linger", "alice"), needs_root=True, mutating=True)
    assert runner.wrap(command)[0] == ("sudo", "-n", "loginctl", "enable-linger", "alice")
    result = runner.run(command)
    assert not result.ok
    assert result.error is not None and "sudo -n refused (a password is required)" in result.error
    assert "alice ALL=(root) NOPASSWD: /usr/bin/loginctl enable-linger alice" in result.error


def test_file_operations_are_atomic_with_modes_and_backups(tmp_path: Path) -> None:
    runner = HostRunner(host(USER))
    state = tmp_path / "state"
    assert runner.execute(EnsureDirectory(state, 0o700)).ok
    target = state / "config.json"
    assert runner.execute(WriteFile(target, "one", 0o600)).ok
    assert runner.execute(WriteFile(target, "two", 0o600)).ok
    assert target.read_text() == "two"
    backup = state / "config.json.reconciler-backup"
    assert backup.read_text() == "one"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert sorted(p.name for p in state.iterdir()) == [
        "config.json",
        "config.json.reconciler-backup",
    ]
    state.chmod(0o755)
    assert runner.execute(EnsureDirectory(state, 0o700)).ok
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


def test_ensure_directory_refuses_a_planted_symlink(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "state").symlink_to(tmp_path / "elsewhere")
    result = HostRunner(host(USER)).execute(EnsureDirectory(tmp_path / "state", 0o700))
    assert not result.ok


def test_wait_for_port_polls_until_the_deadline() -> None:
    answers = iter([False, False, True])
    runner = HostRunner(host(USER), port_answers=lambda port: next(answers), sleep=lambda s: None)
    assert runner.execute(WaitForPort(18789, 5)).ok
    never = HostRunner(host(USER), port_answers=lambda port: False, sleep=lambda s: None)
    result = never.execute(WaitForPort(18789, 0))
    assert not result.ok and "nothing answered on 127.0.0.1:18789" in result.detail


def test_failed_command_operation_reports_the_reason() -> None:
    result = HostRunner(host(USER)).execute(RunCommand(Command(("false",), mutating=True)))
    assert not result.ok and result.detail == "exit 1"
