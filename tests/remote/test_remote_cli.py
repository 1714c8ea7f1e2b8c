"""plan / probe / apply --target over a real sshd (this machine, as root, through SSH)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sshd import RunningSshd

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "specs" / "vm102.yaml"


def reconciler(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env=None if env is None else {**os.environ, **env},
    )


def remote(
    sshd: RunningSshd, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return reconciler(
        *args, "--target", sshd.url, "--ssh-config", str(sshd.root / "ssh_config"), env=env
    )


def test_a_remote_plan_is_the_local_plan_and_costs_one_round_trip(sshd: RunningSshd) -> None:
    local = reconciler("plan", str(SPEC), "--host-check=off", "--format", "json")
    on = {"RECONCILER_SSH_PERSIST": "60"}
    first = remote(sshd, "plan", str(SPEC), "--host-check=off", "--format", "json", env=on)
    assert first.returncode == local.returncode == 0, first.stderr
    shipped = sshd.sessions()
    assert shipped == 2  # the first run finds no agent there and sends it
    second = remote(sshd, "plan", str(SPEC), "--host-check=off", "--format", "json", env=on)
    assert second.returncode == 0, second.stderr
    assert sshd.sessions() == shipped + 1  # warm target: ONE round trip for a whole plan
    # The first run's connection stayed up (RECONCILER_SSH_PERSIST=60): the second run made no
    # handshake of its own.
    assert sshd.connections() == 1
    mine, theirs = json.loads(local.stdout), json.loads(second.stdout)
    assert theirs["actions"] == mine["actions"]
    assert theirs["summary"] == mine["summary"]
    # By default: a connection of the run's own, closed with it.
    third = remote(sshd, "plan", str(SPEC), "--host-check=off")
    assert third.returncode == 0, third.stderr
    fourth = remote(sshd, "plan", str(SPEC), "--host-check=off")
    assert fourth.returncode == 0, fourth.stderr
    assert sshd.connections() == 3


def test_a_bad_persistence_setting_is_a_usage_error(sshd: RunningSshd) -> None:
    result = remote(sshd, "plan", str(SPEC), env={"RECONCILER_SSH_PERSIST": "1m"})
    assert result.returncode == 64, result.stderr  # EX_USAGE
    assert "RECONCILER_SSH_PERSIST='1m': write the seconds" in result.stderr
    assert sshd.connections() == 0


def test_the_host_check_is_made_against_the_remote_hosts_name(sshd: RunningSshd) -> None:
    result = remote(sshd, "plan", str(SPEC))  # vm102 is not this machine
    assert result.returncode == 1
    assert "is for host 'vm102'" in result.stderr


def test_remote_probe_writes_a_private_snapshot_here(sshd: RunningSshd, tmp_path: Path) -> None:
    out = tmp_path / "snap.json"
    result = remote(sshd, "probe", str(SPEC), "--host-check=off", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    assert json.loads(out.read_text())["kind"]
    against = reconciler("plan", str(SPEC), "--host-check=off", "--against", str(out))
    assert against.returncode == 0, against.stderr


def test_a_refused_host_key_stops_before_anything_runs(sshd: RunningSshd) -> None:
    (sshd.root / "known_hosts").write_text("")
    result = remote(sshd, "apply", str(SPEC), "--host-check=off", "--yes")
    assert result.returncode == 1
    assert "host key" in result.stderr and "Traceback" not in result.stderr
    assert sshd.sessions() == 0


def test_a_bad_target_is_a_usage_error_with_the_form(tmp_path: Path) -> None:
    result = reconciler("plan", str(SPEC), "--target", "vm102")
    assert result.returncode == 64
    assert "ssh://[user@]host[:port]" in result.stderr


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("ssh://127.0.0.1:0", "port must be a number from 1 to 65535"),
        ("ssh://127.0.0.1:65536", "port must be a number from 1 to 65535"),
        ("ssh://:22", "missing or invalid host name"),
        ("ssh://-oProxyCommand=touch%20x", "missing or invalid host name"),
        ("ssh://h;touch x", "missing or invalid host name"),
        ("ssh://@127.0.0.1", "invalid user name"),
    ],
)
def test_a_bad_target_is_refused_before_ssh_runs(tmp_path: Path, target: str, says: str) -> None:
    """`--target ssh://host:0` and friends: exit 64 with the reason; ssh is never started (an
    `ssh` first on PATH would leave a mark)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mark = tmp_path / "ssh-ran"
    (bin_dir / "ssh").write_text(f'#!/bin/sh\necho "$@" >> {mark}\nexit 255\n')
    (bin_dir / "ssh").chmod(0o755)
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", str(SPEC), "--target", target],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )
    assert result.returncode == 64, result.stderr
    assert f"error: --target: {target!r}: " in result.stderr and says in result.stderr
    assert "Traceback" not in result.stderr
    assert not mark.exists()


def test_status_over_ssh_is_the_hosts_own(sshd: RunningSshd) -> None:
    there = remote(sshd, "status", str(SPEC), "--json")
    assert there.returncode == 0, there.stderr
    assert (
        json.loads(there.stdout).keys()
        == json.loads(reconciler("status", str(SPEC), "--json").stdout).keys()
    )


def test_a_host_name_mismatch_over_ssh_says_so(sshd: RunningSshd, tmp_path: Path) -> None:
    """The spec names vm102 and reaches it through host.ssh; the machine that answers is another.
    The agent there checks the name locally: it never tries to reach vm102 onward (which used to
    end as 'the host key of ssh://... is not known')."""
    spec = tmp_path / "vm102.yaml"
    text = SPEC.read_text().replace(
        "  user: user\n",
        f"  user: user\n  ssh: {{address: 127.0.0.1, user: root, port: {sshd.port}}}\n",
        1,
    )
    spec.write_text(text)
    result = reconciler("plan", str(spec), "--ssh-config", str(sshd.root / "ssh_config"))
    assert result.returncode == 1, result.stderr
    assert "is for host 'vm102'" in result.stderr, result.stderr
    assert "host key" not in result.stderr and "Traceback" not in result.stderr


def _spec_reaching(sshd: RunningSshd, folder: Path, text: str = SPEC.read_text()) -> Path:
    """The spec `text`, its host reached through `host.ssh` at the test's sshd."""
    spec = folder / "vm102.yaml"
    spec.write_text(
        text.replace(
            "  user: user\n",
            f"  user: user\n  ssh: {{address: 127.0.0.1, user: root, port: {sshd.port}}}\n",
            1,
        )
    )
    return spec


def test_an_invalid_spec_connects_early_but_runs_nothing_there(
    sshd: RunningSshd, tmp_path: Path
) -> None:
    """The handshake starts before the spec is validated (app/remote.py early_connection); a
    spec that then fails validation is reported as always, and nothing ran on the target."""
    spec = _spec_reaching(
        sshd, tmp_path, SPEC.read_text().replace("  user: user\n", "  user: user\n  colour: 3\n", 1)
    )
    result = reconciler("plan", str(spec), "--ssh-config", str(sshd.root / "ssh_config"))
    assert result.returncode == 1, result.stderr
    assert "invalid spec; nothing was probed or changed" in result.stderr, result.stderr
    assert "colour" in result.stderr and "Traceback" not in result.stderr
    assert sshd.sessions() == 0


def test_the_early_connection_is_the_one_the_plan_uses(sshd: RunningSshd, tmp_path: Path) -> None:
    """One connection per remote plan (the early one), one session on a warm target; and the
    plan is the one `--target` gives, where the connection starts only after validation."""
    spec = _spec_reaching(sshd, tmp_path)
    args = ("--ssh-config", str(sshd.root / "ssh_config"), "--host-check=off")
    by_target = remote(sshd, "plan", str(SPEC), "--host-check=off", "--format", "json")
    assert by_target.returncode == 0, by_target.stderr
    connections, sessions = sshd.connections(), sshd.sessions()
    # --host-check=off keeps host.ssh local: --target names the same sshd, as the spec does.
    early = reconciler("plan", str(spec), *args, "--target", sshd.url, "--format", "json")
    assert early.returncode == 0, early.stderr
    assert (sshd.connections(), sshd.sessions()) == (connections + 1, sessions + 1)
    assert json.loads(early.stdout)["actions"] == json.loads(by_target.stdout)["actions"]


def test_a_remote_plan_prints_no_note_about_the_targets_temporary_files(
    sshd: RunningSshd,
) -> None:
    result = remote(sshd, "plan", str(SPEC), "--host-check=off")
    assert result.returncode == 0, result.stderr
    assert "reconciler-remote-" not in result.stderr, result.stderr


def test_day_two_commands_run_on_the_target_with_the_same_arguments(sshd: RunningSshd) -> None:
    """doctor, versions, state-paths, logs, backup list: the host's own answer, through the
    agent (the target is this machine, so the local run is the oracle)."""
    for args in (
        ("state-paths", str(SPEC), "--host-check=off", "--format", "json"),
        ("versions", str(SPEC), "--host-check=off"),
        ("doctor", str(SPEC), "--host-check=off", "--format", "json"),
        ("logs", str(SPEC), "--runs", "-n", "3", "--host-check=off"),
    ):
        here = reconciler(*args)
        there = remote(sshd, *args)
        assert "Traceback" not in there.stderr, there.stderr
        assert there.returncode == here.returncode, (args, there.stderr)
        if "json" in args and here.returncode == 0:
            assert json.loads(there.stdout) == json.loads(here.stdout), args
        else:
            assert there.stderr.splitlines()[-1:] == here.stderr.splitlines()[-1:], args
    sessions = sshd.sessions()
    assert sessions >= 4  # every one of them went there
    backup = remote(sshd, "backup", "list", str(SPEC))
    assert backup.returncode == reconciler("backup", "list", str(SPEC)).returncode
    assert sshd.sessions() == sessions + 1, backup.stderr


def test_the_rebuilt_command_line_keeps_what_was_given(sshd: RunningSshd) -> None:
    """A positional that looks like an option stays an argument there (`--`), options given
    explicitly travel, defaults are the target's own."""
    there = remote(sshd, "devices", str(SPEC), "personal", "approve", "--", "--help")
    assert "Traceback" not in there.stderr and "Usage:" not in there.stdout, there.stdout


def test_doctor_of_a_fleet_over_ssh_has_a_row_per_host_with_each_hosts_error(
    sshd: RunningSshd, tmp_path: Path
) -> None:
    """Two hosts reached through host.ssh: one answers (this machine, which is not vm102: the
    agent's host check there fails, and that error is its row), the other refuses the
    connection (unreachable). One table; with --format json, one entry per host."""
    specs = _two_hosts(tmp_path, sshd, user="user")
    config = ["--ssh-config", str(sshd.root / "ssh_config")]
    table = reconciler("doctor", *specs, *config)
    assert table.returncode == 1 and "Traceback" not in table.stderr, table.stderr
    rows = [line.split(None, 4) for line in table.stdout.splitlines()]
    assert rows[0] == ["HOST", "SPEC", "PROFILE", "RESULT", "DETAIL"], table.stdout
    assert [row[:4] for row in rows[1:3]] == [
        ["vm102", specs[0], "-", "failed"],
        ["vm103", specs[1], "-", "unreachable"],
    ], table.stdout
    assert "is for host 'vm102'" in rows[1][4], table.stdout
    assert "refused" in rows[2][4], table.stdout
    listed = json.loads(reconciler("doctor", *specs, *config, "--format", "json").stdout)
    assert [(e["host"], e["result"], e["doctor"]) for e in listed] == [
        ("vm102", "failed", None),
        ("vm103", "unreachable", None),
    ]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_suspend_and_resume_over_ssh_pause_the_targets_timer(
    sshd: RunningSshd, tmp_path: Path
) -> None:
    """The suspension is written there (the target's state), never here; status there shows
    it; `--target` without a SPEC is a usage error (whose host would it be?)."""
    import os

    spec = tmp_path / "vm102.yaml"  # the target's user is root: its own state directory
    spec.write_text(SPEC.read_text().replace("  user: user\n", "  user: root\n", 1))
    there = sshd.state_home / "reconciler" / "suspended.json"
    here = Path(os.environ["XDG_STATE_HOME"]) / "reconciler" / "suspended.json"
    before = here.read_text() if here.exists() else None  # the session's: other tests' own
    result = remote(sshd, "suspend", str(spec), "--reason", "disk swap")
    assert result.returncode == 0, result.stderr
    assert "Unattended runs suspended since" in result.stdout, result.stdout
    assert json.loads(there.read_text())["reason"] == "disk swap"
    assert (here.read_text() if here.exists() else None) == before  # nothing written here
    status = json.loads(remote(sshd, "status", str(spec), "--json").stdout)
    assert status["suspended"]["reason"] == "disk swap"
    again = remote(sshd, "suspend", str(spec), "--reason", "other")
    assert "kept that suspension" in again.stdout, again.stdout
    result = remote(sshd, "resume", str(spec))
    assert result.returncode == 0, result.stderr
    assert "Resumed unattended runs (they were suspended since" in result.stdout, result.stdout
    assert not there.exists()
    no_spec = remote(sshd, "suspend")
    assert no_spec.returncode == 64 and "--target needs a SPEC" in no_spec.stderr, no_spec.stderr


def _two_hosts(tmp_path: Path, sshd: RunningSshd, *, user: str) -> list[str]:
    """Specs of vm102, reached as root through this test's sshd, and vm103, whose port
    refuses the connection; `user` is their host.user."""
    specs = []
    for name, port in (("vm102", sshd.port), ("vm103", _free_port())):
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            SPEC.read_text()
            .replace("name: vm102", f"name: {name}")
            .replace(
                "  user: user\n",
                f"  user: {user}\n  ssh: {{address: 127.0.0.1, user: root, port: {port}}}\n",
                1,
            )
        )
        specs.append(str(path))
    return specs


def test_suspend_of_a_fleet_over_ssh_is_a_row_per_host(sshd: RunningSshd, tmp_path: Path) -> None:
    """One host reached through host.ssh is suspended there; the other refuses the
    connection: its row says so, and the exit code is 1."""
    specs = _two_hosts(tmp_path, sshd, user="root")
    config = ["--ssh-config", str(sshd.root / "ssh_config")]
    result = reconciler("suspend", *specs, "--reason", "swap", *config)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    rows = [line.split(None, 3) for line in result.stdout.splitlines()]
    assert rows[0] == ["HOST", "SPEC", "RESULT", "DETAIL"], result.stdout
    assert rows[1][:3] == ["vm102", specs[0], "done"], result.stdout
    assert rows[1][3].startswith("Unattended runs suspended since"), result.stdout
    assert rows[2][:3] == ["vm103", specs[1], "unreachable"], result.stdout
    assert "refused" in rows[2][3], result.stdout
    there = sshd.state_home / "reconciler" / "suspended.json"
    assert json.loads(there.read_text())["reason"] == "swap"
    assert reconciler("resume", specs[0], *config).returncode == 0
    assert not there.exists()


def test_early_connection_reads_the_host_from_the_unvalidated_spec(
    sshd: RunningSshd, tmp_path: Path
) -> None:
    """In-process: the early connection is the Remote the validated spec resolves to, and
    `connected` adopts it (same object, no second connection); anything it cannot read, a spec
    without `host.ssh`, or `--target local` is None (the validated spec decides, as before)."""
    from reconciler.app.remote import Reach, connected, early_connection, resolve
    from reconciler.spec import load_spec

    config = sshd.root / "ssh_config"
    spec = _spec_reaching(sshd, tmp_path)
    early = early_connection(spec, Reach(ssh_config=config), host_check=True)
    assert early is not None
    try:
        remote = resolve(load_spec(spec), Reach(ssh_config=config), host_check=True)
        assert remote == early.remote
        with connected(remote, early=early) as used:
            assert used is early
            assert used.snapshot(load_spec(spec), host_check=False).exists()
    finally:
        early.close()
    assert sshd.connections() == 1
    garbage = tmp_path / "garbage.yaml"
    for text in ("{{{", "host: 3\n", "- a list\n", "host: {name: vm102, ssh: {address: [1]}}\n"):
        garbage.write_text(text)
        assert early_connection(garbage, Reach(), host_check=True) is None, text
    assert early_connection(tmp_path / "missing.yaml", Reach(), host_check=True) is None
    assert early_connection(SPEC, Reach(), host_check=True) is None  # no host.ssh
    assert early_connection(spec, Reach(target="local"), host_check=True) is None
    assert early_connection(spec, Reach(), host_check=False) is None  # host.ssh not used
    assert sshd.connections() == 1


def test_a_remote_plan_remembers_on_the_admin_side_that_the_spec_passed(
    sshd: RunningSshd, tmp_path: Path
) -> None:
    """The admin machine's validation cache keeps the spec a remote plan validated (the host's
    home is not this machine's); a local plan still writes nothing there (the dry-run law)."""
    cache = tmp_path / "admin-cache"
    env = {"XDG_CACHE_HOME": str(cache)}
    local = reconciler("plan", str(SPEC), "--host-check=off", env=env)
    assert local.returncode == 0, local.stderr
    assert not (cache / "reconciler" / "specs").exists()
    there = remote(sshd, "plan", str(SPEC), "--host-check=off", env=env)
    assert there.returncode == 0, there.stderr
    assert len(list((cache / "reconciler" / "specs").glob("*.json"))) == 1


def test_a_fleet_plan_remembers_the_specs_only_when_every_host_is_remote(
    sshd: RunningSshd, tmp_path: Path
) -> None:
    cache = tmp_path / "admin-cache"
    env = {"XDG_CACHE_HOME": str(cache)}
    config = ("--ssh-config", str(sshd.root / "ssh_config"))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _spec_reaching(sshd, tmp_path / "a")
    second = _spec_reaching(sshd, tmp_path / "b", SPEC.read_text() + "# the second host\n")
    # One spec names no SSH host: it is this machine, whose home a plan leaves as it was.
    mixed = reconciler("plan", str(first), str(SPEC), *config, env=env)
    assert "Traceback" not in mixed.stderr
    assert not (cache / "reconciler" / "specs").exists()
    # Both remote (vm102 is not the machine that answers: each host check fails there, after
    # this side validated both specs).
    both = reconciler("plan", str(first), str(second), *config, env=env)
    assert "is for host 'vm102'" in both.stdout + both.stderr, both.stdout
    assert len(list((cache / "reconciler" / "specs").glob("*.json"))) == 2
