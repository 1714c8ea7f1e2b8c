"""The user's own env files never run code as root (issue 22, hole 1), with a real second
account: the red team's `LD_PRELOAD=/home/u/evil.so` and `PATH=/home/u/bin` in the file whose
values a user-scope command gets (`backup.environment_file`, a profile's `gateway.env`).

The evidence is the kernel's: a shared object whose constructor appends the euid of every
process that loads it, and a planted `runuser`/`sudo` that leave a mark when anyone runs them.
Before the fix, root's `runuser` loaded the object with euid 0 (`backup list`, `plan`, `doctor`,
`devices`, `update`, `rollback` all ran a command with such a file as root)."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest
from real_users import Attack, real_user  # noqa: F401  (the fixture)

from reconciler.core.command import Command
from reconciler.core.host import Account, HostContext
from reconciler.facts.backup import ResticRepositoryProbe
from reconciler.shell.runner import HostRunner, ReadOnlyRunner


def root_host(user: Account) -> HostContext:
    return HostContext(
        hostname=socket.gethostname(),
        invoker=Account.current(),
        user=user,
        user_name=user.name,
    )


@pytest.fixture
def attack(tmp_path: Path, real_user: Account) -> Attack:  # noqa: F811
    return Attack(tmp_path, real_user)


def test_a_user_command_with_the_users_env_file_runs_no_code_of_theirs_as_root(
    attack: Attack,
) -> None:
    runner = ReadOnlyRunner(root_host(attack.user))
    result = runner.run(Command(("id", "-u"), scope="user", env_file=attack.env_file))
    assert result.ok, result.summary()
    assert result.stdout.strip() == str(attack.user.uid)
    # The user's own process got the file's values (their LD_PRELOAD included, their business).
    assert (attack.loaded.read_text().splitlines() if attack.loaded.exists() else []) == [
        f"euid={attack.user.uid}"
    ]
    assert attack.root_loaded_it() == []
    assert attack.planted_ran() == ""


def test_the_values_reach_the_users_process_and_no_variable_of_roots(
    attack: Attack, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = HostRunner(root_host(attack.user), env={**os.environ, "ROOTS_OWN": "x" * 12})
    result = runner.run(Command(("/usr/bin/env",), scope="user", env_file=attack.env_file))
    assert result.ok, result.summary()
    seen = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert seen["CLAWDBOT_GATEWAY_TOKEN"] == "tok-0123456789abcdef"
    assert seen["HOME"] == str(attack.user.home) and seen["USER"] == attack.user.name
    assert seen["XDG_RUNTIME_DIR"] == f"/run/user/{attack.user.uid}"
    assert "ROOTS_OWN" not in seen
    assert attack.root_loaded_it() == [] and attack.planted_ran() == ""


def test_plans_restic_probe_with_the_environment_file_runs_nothing_of_theirs_as_root(
    attack: Attack, tmp_path: Path
) -> None:
    """`plan` of a spec with `backup.environment_file`: the repository probe (read-only)."""
    if shutil.which("restic") is None:
        pytest.skip("restic is not installed")
    password = attack.user.home / "restic-password"
    password.write_text("pw-0123456789\n")
    password.chmod(0o600)
    os.chown(password, attack.user.uid, attack.user.gid)
    host = root_host(attack.user)
    probe = ResticRepositoryProbe(
        shutil.which("restic") or "restic",
        str(attack.user.home / "repo"),
        password,
        attack.env_file,
    )
    command = probe.command(host)
    assert command is not None
    fact = probe.parse(ReadOnlyRunner(host).run(command))
    assert fact.state == "absent", fact
    assert attack.root_loaded_it() == [] and attack.planted_ran() == ""


def test_an_env_file_that_is_a_symlink_or_fifo_or_another_users_is_refused(
    attack: Attack, tmp_path: Path
) -> None:
    runner = ReadOnlyRunner(root_host(attack.user))
    link = attack.user.home / "link.env"
    link.symlink_to("/etc/shadow")
    os.lchown(link, attack.user.uid, attack.user.gid)
    fifo = attack.user.home / "fifo.env"
    os.mkfifo(fifo)
    os.chown(fifo, attack.user.uid, attack.user.gid)
    roots = tmp_path / "roots.env"
    roots.write_text("A=1\n")
    for path, why in ((link, "symbolic links"), (fifo, "not a regular file"), (roots, "")):
        result = runner.run(Command(("true",), scope="user", env_file=path))
        assert result.exit_code is None and result.error, path
        assert why in result.error or not why, result.error


def test_roots_path_is_not_the_users_search_path(
    real_user: Account,  # noqa: F811
) -> None:
    """`sudo -i` gives root `/root/bin` and a venv's bin first: the user's commands (run with
    `PATH=` of the user's search path) must not search there."""
    host = HostContext.discover(real_user.name, path="/root/bin:/root/venv/bin:/usr/bin")
    assert not any(p.startswith("/root") for p in host.user_search_path())
    assert host.user_search_path()[0] == str(real_user.home / ".npm-global/bin")
    assert "/usr/bin" in host.user_search_path()
    argv, _ = ReadOnlyRunner(host).wrap(Command(("systemctl", "--user"), scope="user"))
    (path,) = [a for a in argv if a.startswith("PATH=")]
    assert "/root" not in path


def test_doctor_devices_and_the_switch_health_check_run_nothing_of_the_users_as_root(
    attack: Attack,
) -> None:
    """Each place root runs the gateway's CLI with the profile's `gateway.env`: doctor's and the
    switch's `gateway health` (update, rollback), devices' `devices list` and approve."""
    from reconciler.facts.devices import DevicesListProbe
    from reconciler.facts.gateway_rpc import GatewayCall, GatewayHealthProbe

    host = root_host(attack.user)
    env = (("CLAWDBOT_PROFILE", "ops"),)
    commands = [
        GatewayHealthProbe("/bin/true", 18789, env, attack.env_file).command(host),
        DevicesListProbe("/bin/true", 18789, env, attack.env_file).command(host),
        GatewayCall("/bin/true", 18789, env, attack.env_file).command(
            "devices", "approve", "req-1", mutating=True
        ),
    ]
    runner = HostRunner(root_host(attack.user))
    for command in commands:
        assert command.env_file == attack.env_file and command.scope == "user"
        result = runner.run(command)
        assert result.exit_code is not None, result.error
    assert attack.root_loaded_it() == []
    assert attack.planted_ran_as_root() == []


def test_control_without_the_drop_root_loads_the_users_object(
    attack: Attack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack is real: with the file's values in the environment of root's `runuser` (the
    code before the fix), root's process loads the user's object. So the tests above can fail."""
    monkeypatch.setattr(HostRunner, "_start_as", lambda self, command, program, values: None)
    runner = HostRunner(root_host(attack.user))
    runner.run(Command(("id", "-u"), scope="user", env_file=attack.env_file))
    assert "euid=0" in attack.root_loaded_it()
