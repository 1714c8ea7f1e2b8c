"""An admin account (neither root nor the spec's user) acts as the user through `sudo -n -u`
(issue 20 #2): the user's commands get `sudo -n -u USER --`, file work goes to one helper that
sudo started, and a refusal names the exact sudoers line. The fake `sudo` (tests/fakehost/bin)
checks the caller's rules per target user as the real one does; it does not switch uids (the
e2e suite logs in as an admin with narrow rules on a real host)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from fakehost import FakeHost

from reconciler.core.command import Command
from reconciler.core.host import Account, HostContext, user_sudoers_line
from reconciler.core.secrets import known_secrets, remember_secret
from reconciler.facts.files import read_as_user, read_path
from reconciler.shell.runner import ReadOnlyRunner
from reconciler.system.as_user import (
    ChildFailed,
    ThroughSudo,
    acting_account,
    call_as,
    close_helpers,
    helper_running,
    sudo_reaches,
)
from reconciler.unattended.lock import _let_go_in_helper, _take_in_helper

ADMIN = Account("admin", 5151, 5151, Path("/home/admin"))


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHost]:
    host = FakeHost(tmp_path / "host")
    host.set_caller("admin")
    for name in ("PATH", "FAKEHOST_STATE"):
        monkeypatch.setenv(name, host.env[name])
    try:
        yield host
    finally:
        close_helpers()


def _user(fake: FakeHost) -> ThroughSudo:
    # Another uid than ours, so that call_as cannot do the work in-process.
    return ThroughSudo(fake.user, os.geteuid() + 4242, os.getegid(), fake.home)


def _sudo_calls(fake: FakeHost) -> list[list[str]]:
    return [c["argv"] for c in fake.calls() if c["tool"] == "sudo"]


def test_file_work_goes_to_one_helper_that_sudo_u_started(fake: FakeHost, tmp_path: Path) -> None:
    fake.allow_sudo(False)  # nothing as root
    fake.allow_sudo(True, as_user=fake.user)  # admin ALL=(user) NOPASSWD: ALL
    account = _user(fake)
    config = tmp_path / "config.json"
    config.write_text('{"gateway": {}}\n')
    assert sudo_reaches(account) is None and helper_running(fake.user)

    host = _admin_host(account, sudo_to_user=True)
    assert acting_account(host) == account
    state = read_as_user(host, partial(read_path, config, content=True))
    assert state.text == '{"gateway": {}}\n' and state.kind == "file"
    with pytest.raises(FileNotFoundError) as missing:
        call_as(account, partial(os.stat, str(tmp_path / "absent")))
    assert missing.value.filename == str(tmp_path / "absent")
    token = "tok-" + "7" * 40  # a secret the helper learnt is masked here too
    call_as(account, partial(remember_secret, token))
    assert token in known_secrets()
    # A lambda cannot cross to another process: a clear error, never a silent in-process run.
    with pytest.raises(ChildFailed, match="cannot hand this work to user through sudo"):
        call_as(account, lambda: 1)

    close_helpers()
    calls = _sudo_calls(fake)
    assert len(calls) == 1, calls  # one sudo for the whole run, never one per read
    assert calls[0][:5] == ["sudo", "-n", "-u", fake.user, "--"]
    assert "sh" not in calls[0] and calls[0][6:8] == ["-I", "-c"]  # python's -c, not a shell


def test_sudo_refusing_the_user_is_said_in_sudos_words(fake: FakeHost) -> None:
    fake.allow_sudo(False)
    assert sudo_reaches(_user(fake)) == "a password is required"
    assert not helper_running(fake.user)


def test_the_users_lock_is_held_by_the_helper(fake: FakeHost, tmp_path: Path) -> None:
    fake.allow_sudo(True, as_user=fake.user)
    account = _user(fake)
    lock = str(tmp_path / "state" / "lock")
    record = '{"pid": 1, "user": "admin"}\n'
    assert call_as(account, partial(_take_in_helper, lock, record)) is None
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    # Held: another taker (the user's timer) finds it busy and reads who holds it.
    assert call_as(account, partial(_take_in_helper, lock, "{}\n")) == record
    assert call_as(account, partial(_let_go_in_helper, lock)) is True
    assert call_as(account, partial(_take_in_helper, lock, "{}\n")) is None


def _admin_host(user: Account, *, sudo_to_user: bool) -> HostContext:
    return HostContext(
        hostname="vm102",
        invoker=ADMIN,
        user=user,
        user_name=user.name,
        privileged=False,
        sudo_to_user=sudo_to_user,
    )


def test_the_users_commands_get_sudo_n_u_and_a_refusal_names_the_line(fake: FakeHost) -> None:
    user = Account(fake.user, os.geteuid(), os.getegid(), fake.home)
    host = _admin_host(user, sudo_to_user=True)
    assert acting_account(host) is None or isinstance(acting_account(host), ThroughSudo)
    runner = ReadOnlyRunner(host, env=fake.env)
    command = Command(("systemctl", "--user", "is-system-running"), scope="user")
    argv, refusal = runner.wrap(command)
    assert refusal is None
    assert argv[:6] == ("sudo", "-n", "-u", fake.user, "--", "env")
    assert f"XDG_RUNTIME_DIR=/run/user/{user.uid}" in argv
    assert argv[-3:] == command.argv

    fake.allow_sudo(False)  # sudo was taken away since: the step says what to add
    result = runner.run(command)
    line = user_sudoers_line("admin", fake.user)
    assert line == f"admin ALL=({fake.user}) NOPASSWD: ALL"
    assert result.exit_code is None and result.error is not None
    assert "sudo -n -u user refused (a password is required)" in result.error
    assert line in result.error

    # Without sudo to the user (checked once, app/context.py): refused before running.
    _, refusal = ReadOnlyRunner(_admin_host(user, sudo_to_user=False)).wrap(command)
    assert refusal is not None and line in refusal and "run as user or as root" in refusal


def test_the_users_variables_pass_sudos_reset_by_name_only(fake: FakeHost, tmp_path: Path) -> None:
    fake.allow_sudo(True, as_user=fake.user)
    user = Account(fake.user, os.geteuid(), os.getegid(), fake.home)
    token = tmp_path / "token.env"
    token.write_text("GW_TOKEN=s3cret-value-1234567890\n")
    token.chmod(0o600)
    runner = ReadOnlyRunner(_admin_host(user, sudo_to_user=True), env=fake.env)
    command = Command(("sh", "-c", "echo ${GW_TOKEN:-unset}"), scope="user", env_file=token)
    result = runner.run(command)
    assert result.ok, result
    assert result.stdout.strip() == "s3cret-value-1234567890"
    assert "--preserve-env=GW_TOKEN" in _sudo_calls(fake)[-1]
    assert not any("s3cret" in arg for arg in _sudo_calls(fake)[-1])


@pytest.mark.parametrize("rule", [True, False])
def test_an_admins_apply_writes_the_metrics_as_the_user(
    fake: FakeHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rule: bool
) -> None:
    """The metrics textfile and the run record go where the user's timer writes them, through
    the helper sudo started (the folder is the user's, not the admin's). Without the rule the
    admin writes as itself, and a folder that is not the admin's is a warning, not a failure.
    This process plays the admin: its own metrics.write is refused, so a file that appears was
    written by the helper (fake sudo does not switch uids; the e2e checks the owner)."""
    from reconciler.app.context import AppContext
    from reconciler.app.unattended import unattended_apply
    from reconciler.unattended.runs import ApplyOutcome

    fake.allow_sudo(False)
    fake.allow_sudo(rule, as_user=fake.user)
    account = _user(fake)
    host = _admin_host(account, sudo_to_user=sudo_reaches(account) is None)
    textfiles = tmp_path / "textfiles"
    textfiles.mkdir()
    spec = tmp_path / "vm102.yaml"
    spec.write_text(
        f"apiVersion: reconciler/v1\nhost:\n  name: vm102\n  user: {fake.user}\n"
        f"profiles:\n  personal:\n    port: 18789\nmetrics:\n  textfile_dir: {textfiles}\n"
    )

    def not_the_admins(*args: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("reconciler.unattended.metrics.write", not_the_admins)
    output: list[str] = []
    ctx = AppContext(
        output=_Lines(output),
        discover_host=lambda spec: host,
        state_dir=lambda: tmp_path / "admin-state",
        port_answers=lambda port: False,
    )
    code = unattended_apply(
        spec,
        lock_timeout=0,
        non_interactive=True,
        log_format="text",
        do_apply=lambda spec, log: ApplyOutcome("converged"),  # type: ignore[arg-type,return-value]
        ctx=ctx,
    )
    assert code == 0, output
    written = (textfiles / "reconciler.prom").exists()
    users_records = fake.home / ".local/state/reconciler/runs.jsonl"
    if rule:
        assert written and not any("warning" in line for line in output), output
        assert users_records.is_file() and not (tmp_path / "admin-state").exists()
        close_helpers()
        assert [c[:4] for c in _sudo_calls(fake)] == [["sudo", "-n", "-u", fake.user]]
    else:
        assert not written
        assert any(f"could not write the metrics file in {textfiles}" in x for x in output)
        assert not users_records.exists()


class _Lines:
    """An Output that keeps what a use case printed (stdout and stderr alike)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def echo(self, text: str = "", *, nl: bool = True, color: bool = False) -> None:
        self.lines.append(text)

    def error(self, text: str) -> None:
        self.lines.append(text)


def test_backups_secret_files_are_looked_at_as_the_user(
    fake: FakeHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The restic password file lies in the user's home, which an admin account cannot even
    search as itself: its lstat goes to the helper. This process plays the admin, whose own
    lstat is refused; the helper's answer (a file of another uid than the user's) is what the
    problem names."""
    from reconciler.gateway.backup import Repository
    from reconciler.shell.restic import secret_problems

    fake.allow_sudo(True, as_user=fake.user)
    account = _user(fake)
    assert sudo_reaches(account) is None
    password = tmp_path / "password"
    password.write_text("pw\n")
    password.chmod(0o600)
    real_lstat = os.lstat

    def refused(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if str(path) == str(password):
            raise PermissionError(13, "Permission denied", str(path))
        return real_lstat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "lstat", refused)
    repo = Repository(str(tmp_path / "repo"), password, None)
    problems = secret_problems(repo, _admin_host(account, sudo_to_user=True))
    assert problems == [
        f"password_file {password} belongs to uid {os.geteuid()}, "
        f"not the spec's user (uid {account.uid})"
    ]
