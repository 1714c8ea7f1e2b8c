"""The fake host's tools behave like the real ones as docs/host-facts.md describes them."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from fakehost import BIN_SRC, TOOLS, FakeHost, fs
from fakehost import fixture as _fixture
from hypothesis import given
from hypothesis import strategies as st

fake_host = _fixture.fake_host

PROBES = Path(__file__).parent / "data" / "probes"
UNIT = "clawdbot-gateway.service"
SHOW_KEYS = "Id,LoadState,ActiveState,SubState,UnitFileState,FragmentPath,NeedDaemonReload"


def blocks(text: str) -> list[dict[str, str]]:
    """`systemctl show` output -> one dict per block."""
    return [
        dict(line.split("=", 1) for line in block.splitlines())
        for block in text.rstrip("\n").split("\n\n")
    ]


def listen_ports(proc_root: Path) -> dict[int, int]:
    """port -> inode of LISTEN rows in <proc>/net/tcp."""
    res = {}
    for line in (proc_root / "net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if f[3] == "0A":
            res[int(f[1].split(":")[1], 16)] = int(f[9])
    return res


def served(host: FakeHost) -> dict:
    r = host.run("tailscale", "serve", "status", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout) or {}


# --------------------------------------------------------------------------------------------
# layout


def test_fakes_are_executable_python_scripts() -> None:
    for tool in (*TOOLS, "openclaw"):
        path = BIN_SRC / tool
        assert path.read_text().startswith("#!/usr/bin/env python3\n"), tool
        assert stat.S_IMODE(path.stat().st_mode) == 0o755, tool
    assert os.readlink(BIN_SRC / "openclaw") == "clawdbot"


def test_layout_and_env(fake_host: FakeHost) -> None:
    h = fake_host
    assert h.linger_dir.is_dir() and h.home.is_dir() and (h.proc_root / "net/tcp").is_file()
    assert h.env["FAKEHOST_STATE"] == str(h.dir)
    assert h.env["PATH"].split(":")[0] == str(h.bin_dir)
    for tool in TOOLS:
        assert (h.bin_dir / tool).exists()
    # the real system's copies of faked tools are not reachable
    assert subprocess.run(
        ["which", "-a", "node"], env=h.env, capture_output=True, text=True
    ).stdout.split() == [str(h.bin_dir / "node")]


def test_calls_log_records_every_invocation(fake_host: FakeHost) -> None:
    fake_host.run("tailscale", "version")
    fake_host.run("tailscale", "serve", "--https=443", "off")
    calls = fake_host.calls()
    assert [c["argv"] for c in calls] == [
        ["tailscale", "version"],
        ["tailscale", "serve", "--https=443", "off"],
    ]
    assert calls[0] | {"t": 0} == {
        "tool": "tailscale",
        "argv": ["tailscale", "version"],
        "caller": "user",
        "mutating": False,
        "exit": 0,
        "t": 0,
    }
    assert calls[1]["mutating"] is True and calls[1]["exit"] == 1
    assert fake_host.mutating_calls() == calls[1:]


# --------------------------------------------------------------------------------------------
# tailscale


@pytest.mark.parametrize(
    ("target", "proxy"),
    [
        ("18789", "http://127.0.0.1:18789"),
        ("127.0.0.1:18789", "http://127.0.0.1:18789"),
        ("localhost:18789", "http://localhost:18789"),
        ("http://127.0.0.1:18789", "http://127.0.0.1:18789"),
    ],
)
def test_serve_target_forms(fake_host: FakeHost, target: str, proxy: str) -> None:
    fake_host.set_operator("user")
    r = fake_host.run("tailscale", "serve", "--bg", "--yes", target)
    assert r.returncode == 0, r.stderr
    d = fake_host.dns_name
    assert served(fake_host) == {
        "TCP": {"443": {"HTTPS": True}},
        "Web": {f"{d}:443": {"Handlers": {"/": {"Proxy": proxy}}}},
    }
    assert r.stdout == (PROBES / "tailscale/stdout-serve-bg-started.txt").read_text().replace(
        "http://127.0.0.1:18789", proxy
    )


def test_serve_two_ports_prints_reference_shape(fake_host: FakeHost) -> None:
    fake_host.set_operator("user")
    assert fake_host.run("tailscale", "serve", "--bg", "--yes", "18789").returncode == 0
    r = fake_host.run(
        "tailscale", "serve", "--bg", "--yes", "--https=8443", "http://127.0.0.1:18809"
    )
    assert r.returncode == 0, r.stderr
    assert "https://vm102.tail1234.ts.net:8443/" in r.stdout
    expected = json.loads((PROBES / "tailscale/serve-status-two-ports.json").read_text())
    del expected["AllowFunnel"]
    assert served(fake_host) == expected


def test_serve_status_prints_go_json_bytes(fake_host: FakeHost) -> None:
    for name in ("two-ports", "foreground-funnel", "services"):
        fixture = (PROBES / f"tailscale/serve-status-{name}.json").read_text()
        fake_host.set_serve_config(json.loads(fixture))
        assert fake_host.run("tailscale", "serve", "status", "--json").stdout == fixture


def test_empty_serve_config_braces_or_null(fake_host: FakeHost) -> None:
    assert fake_host.run("tailscale", "serve", "status", "--json").stdout == "{}\n"
    fake_host.set_serve_config(None)
    assert fake_host.run("tailscale", "serve", "status", "--json").stdout == "null\n"
    # an entry added then removed: empty again, in the same style
    fake_host.set_operator("user")
    assert fake_host.run("tailscale", "serve", "--bg", "18789").returncode == 0
    assert fake_host.run("tailscale", "serve", "--https=443", "off").returncode == 0
    assert fake_host.run("tailscale", "serve", "status", "--json").stdout == "null\n"


def test_serve_off_when_absent_fails(fake_host: FakeHost) -> None:
    before = fake_host.snapshot()
    r = fake_host.run("tailscale", "serve", "--https=443", "off", caller="root")
    assert r.returncode == 1
    assert r.stderr == (PROBES / "tailscale/stderr-handler-does-not-exist.txt").read_text()
    assert r.stderr.startswith("error: failed to remove web serve: handler does not exist\n")
    assert fake_host.snapshot() == before


def test_serve_off_removes_only_that_port(fake_host: FakeHost) -> None:
    fake_host.set_serve_config(
        json.loads((PROBES / "tailscale/serve-status-two-ports.json").read_text())
    )
    r = fake_host.run("tailscale", "serve", "--https=8443", "off", caller="root")
    assert (r.returncode, r.stdout) == (0, "")
    d = fake_host.dns_name
    assert served(fake_host) == {
        "TCP": {"443": {"HTTPS": True}},
        "Web": {f"{d}:443": {"Handlers": {"/": {"Proxy": "http://127.0.0.1:18789"}}}},
        "AllowFunnel": {f"{d}:443": True},
    }


def test_access_denied_for_non_operator(fake_host: FakeHost) -> None:
    before = fake_host.snapshot()
    r = fake_host.run("tailscale", "serve", "--bg", "--yes", "18789")
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == (PROBES / "tailscale/stderr-access-denied.txt").read_text()
    assert fake_host.snapshot() == before
    fake_host.set_operator("someone-else")
    assert fake_host.run("tailscale", "serve", "reset").returncode == 1
    # root and the operator may write
    assert fake_host.run("tailscale", "serve", "--bg", "18789", caller="root").returncode == 0
    fake_host.set_operator("user")
    assert fake_host.run("tailscale", "serve", "--bg", "--https=8443", "18809").returncode == 0


def test_logged_out_and_stopped(fake_host: FakeHost) -> None:
    fake_host.set_operator("user")
    fake_host.set_tailscale(backend_state="NeedsLogin")
    before = fake_host.snapshot()
    r = fake_host.run("tailscale", "serve", "--bg", "--yes", "18789")
    assert (r.returncode, r.stderr) == (1, "Logged out.\n")
    assert fake_host.snapshot() == before
    fake_host.set_tailscale(auth_url="https://login.tailscale.com/a/1a2b3c")
    r = fake_host.run("tailscale", "serve", "--bg", "--yes", "18789")
    assert r.stderr == "Logged out.\nLog in at: https://login.tailscale.com/a/1a2b3c\n"
    fake_host.set_tailscale(backend_state="Stopped")
    r = fake_host.run("tailscale", "serve", "--bg", "--yes", "18789")
    assert (r.returncode, r.stderr) == (1, "Tailscale is stopped.\n")


def test_https_not_enabled_exits_0_without_applying(fake_host: FakeHost) -> None:
    fake_host.set_operator("user")
    fake_host.set_tailscale(https=False)
    before = fake_host.snapshot()
    r = fake_host.run("tailscale", "serve", "--bg", "--yes", "18789")
    assert r.returncode == 0
    assert "https://login.tailscale.com/f/serve" in r.stdout
    assert fake_host.snapshot() == before
    status = json.loads(fake_host.run("tailscale", "status", "--json").stdout)
    assert "https" not in status["Self"]["CapMap"]
    assert status["CertDomains"] is None


def test_daemon_down(fake_host: FakeHost) -> None:
    fake_host.set_tailscale(daemon=False)
    r = fake_host.run("tailscale", "status", "--json")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr.startswith(
        "failed to connect to local tailscaled; it doesn't appear to be running"
    )
    r = fake_host.run("tailscale", "serve", "--bg", "--yes", "18789", caller="root")
    assert r.returncode == 1
    assert "failed to connect to local tailscale" in r.stderr.lower()
    for argv in (["serve", "status", "--json"], ["debug", "prefs"], ["get", "operator"]):
        r = fake_host.run("tailscale", *argv)
        assert r.returncode == 1 and "Failed to connect to local Tailscale daemon" in r.stderr
    assert fake_host.run("tailscale", "version").returncode == 0


@pytest.mark.parametrize(
    "state", ["NoState", "NeedsLogin", "NeedsMachineAuth", "Stopped", "Starting", "Running"]
)
def test_status_json_exit_0_in_every_state(fake_host: FakeHost, state: str) -> None:
    fake_host.set_tailscale(backend_state=state)
    r = fake_host.run("tailscale", "status", "--json")
    assert r.returncode == 0
    st = json.loads(r.stdout)
    assert st["BackendState"] == state
    if state in ("Running", "Starting", "Stopped"):
        assert st["Self"]["DNSName"] == "vm102.tail1234.ts.net."
        assert "https" in st["Self"]["CapMap"] and st["Self"]["CapMap"]["https"] is None
    else:
        assert st["Self"]["DNSName"] == ""


def test_status_fixtures_match(fake_host: FakeHost) -> None:
    for state, name in (
        ("Running", "running-https"),
        ("NeedsLogin", "needslogin"),
        ("Stopped", "stopped"),
    ):
        fake_host.set_tailscale(backend_state=state)
        out = fake_host.run("tailscale", "status", "--json").stdout
        assert out == (PROBES / f"tailscale/status-{name}.json").read_text()


def test_funnel_removed_by_serve_on_that_port(fake_host: FakeHost) -> None:
    fake_host.set_serve_config(
        json.loads((PROBES / "tailscale/serve-status-two-ports.json").read_text())
    )
    r = fake_host.run("tailscale", "serve", "--bg", "--yes", "18789", caller="root")
    assert r.returncode == 0
    assert "Removing Funnel for" in r.stderr
    assert "AllowFunnel" not in served(fake_host)
    assert r.stdout.startswith("Available within your tailnet:")


def test_funnel_on_and_off(fake_host: FakeHost) -> None:
    d = fake_host.dns_name
    r = fake_host.run("tailscale", "funnel", "--bg", "18789", caller="root")
    assert r.returncode == 0 and r.stdout.startswith("Available on the internet:")
    assert served(fake_host)["AllowFunnel"] == {f"{d}:443": True}
    # funnel off removes the web handler of that port as well (serve_v2.go unsetServe)
    r = fake_host.run("tailscale", "funnel", "--https=443", "off", caller="root")
    assert r.returncode == 0
    assert served(fake_host) == {}
    r = fake_host.run("tailscale", "funnel", "--https=443", "off", caller="root")
    assert r.returncode == 1 and "handler does not exist" in r.stderr


def test_serve_reset_and_argument_errors(fake_host: FakeHost) -> None:
    fake_host.set_serve_config(
        json.loads((PROBES / "tailscale/serve-status-foreground-funnel.json").read_text())
    )
    r = fake_host.run(
        "tailscale", "serve", "18789", "--bg", caller="root"
    )  # flags after the target
    assert (r.returncode, r.stderr.splitlines()[0]) == (1, "Error: invalid argument format")
    r = fake_host.run("tailscale", "serve", "--bg", "--https=8443", "3001", caller="root")
    assert (r.returncode, r.stderr) == (1, "foreground already exists under this port\n")
    assert fake_host.run("tailscale", "serve", "reset", caller="root").returncode == 0
    assert served(fake_host) == {}


def test_operator_set_and_read(fake_host: FakeHost) -> None:
    prefs = json.loads(fake_host.run("tailscale", "debug", "prefs").stdout)
    assert "OperatorUser" not in prefs and prefs["ControlURL"]
    r = fake_host.run("tailscale", "set", "--operator=user")
    assert r.returncode == 1
    assert r.stderr == (PROBES / "tailscale/stderr-set-operator-access-denied.txt").read_text()
    assert fake_host.run("sudo", "-n", "tailscale", "set", "--operator=user").returncode == 0
    out = fake_host.run("tailscale", "debug", "prefs").stdout
    assert out == (PROBES / "tailscale/debug-prefs-operator.json").read_text()
    assert fake_host.run("tailscale", "get", "operator").stdout == "user\n"
    fake_host.set_tailscale(version="1.94.1")
    r = fake_host.run("tailscale", "get", "operator")
    assert (r.returncode, r.stderr) == (1, "tailscale: unknown subcommand: get\n")


# --------------------------------------------------------------------------------------------
# systemctl


def test_show_format_and_block_order(fake_host: FakeHost) -> None:
    fake_host.install_gateway_unit(None, port=18789)
    fake_host.install_gateway_unit("work", port=18809)
    r = fake_host.run(
        "systemctl",
        "--user",
        "show",
        UNIT,
        "nope.service",
        "clawdbot-gateway-work.service",
        "-p",
        SHOW_KEYS,
    )
    assert r.returncode == 0
    assert "\n\n\n" not in r.stdout and r.stdout.endswith("\n") and not r.stdout.endswith("\n\n")
    got = blocks(r.stdout)
    assert [b["Id"] for b in got] == [UNIT, "nope.service", "clawdbot-gateway-work.service"]
    assert got[1] == {
        "Id": "nope.service",
        "LoadState": "not-found",
        "ActiveState": "inactive",
        "SubState": "dead",
        "FragmentPath": "",
        "UnitFileState": "",
        "NeedDaemonReload": "no",
    }
    assert got[0]["FragmentPath"] == str(fake_host.unit_path(UNIT))
    assert (got[0]["ActiveState"], got[0]["UnitFileState"]) == ("active", "enabled")
    # --property=, several -p, and --value
    r = fake_host.run(
        "systemctl", "--user", "show", UNIT, "--property=ActiveState", "-p", "MainPID,Id", "--value"
    )
    pid = fake_host.listeners()[0]["pid"]
    assert r.stdout.splitlines() == [str(pid), UNIT, "active"]  # systemd's order, not ours


def test_show_timestamps(fake_host: FakeHost) -> None:
    def stamp(*opts: str) -> str:
        r = fake_host.run("systemctl", "--user", "show", *opts, UNIT, "-p", "ActiveEnterTimestamp")
        return r.stdout.strip().split("=", 1)[1]

    assert stamp() == ""  # never active
    fake_host.install_gateway_unit(None, port=18789)
    assert time.strptime(stamp(), "%a %Y-%m-%d %H:%M:%S UTC")
    assert time.strptime(stamp("--timestamp=us+utc"), "%a %Y-%m-%d %H:%M:%S.%f UTC")
    mono = fake_host.run(
        "systemctl", "--user", "show", UNIT, "-p", "ActiveEnterTimestampMonotonic", "--value"
    )
    assert int(mono.stdout) > 0


def test_show_fixtures_match(fake_host: FakeHost) -> None:
    fake_host.install_gateway_unit("work", port=18809)
    fake_host.install_gateway_unit(None, port=18789)
    root = str(fake_host.root)
    r = fake_host.run(
        "systemctl", "--user", "show", UNIT, "clawdbot-gateway-work.service", "-p", SHOW_KEYS
    )
    assert r.stdout.replace(root, "") == (PROBES / "systemd/show-two-units.txt").read_text()
    r = fake_host.run("systemctl", "--user", "show", "moltbot-gateway.service", "-p", SHOW_KEYS)
    assert r.stdout == (PROBES / "systemd/show-not-found.txt").read_text()


def test_need_daemon_reload(fake_host: FakeHost) -> None:
    def need() -> str:
        r = fake_host.run("systemctl", "--user", "show", UNIT, "-p", "NeedDaemonReload", "--value")
        return r.stdout.strip()

    path = fake_host.add_unit_file(UNIT, fake_host.gateway_unit_text())
    assert need() == "yes"  # added, not loaded
    assert fake_host.run("systemctl", "--user", "daemon-reload").returncode == 0
    assert need() == "no"
    path.write_text(path.read_text().replace("18789", "18799"))
    assert need() == "yes"  # content changed
    fake_host.run("systemctl", "--user", "daemon-reload")
    assert need() == "no"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert need() == "yes"  # same content, newer mtime
    fake_host.run("systemctl", "--user", "daemon-reload")
    path.unlink()
    assert need() == "yes"  # removed while loaded


def test_start_requires_loaded_unit(fake_host: FakeHost) -> None:
    fake_host.add_unit_file(UNIT, fake_host.gateway_unit_text())
    before = fake_host.snapshot()
    r = fake_host.run("systemctl", "--user", "start", UNIT)
    assert (r.returncode, r.stderr) == (5, f"Failed to start {UNIT}: Unit {UNIT} not found.\n")
    assert fake_host.snapshot() == before
    fake_host.run("systemctl", "--user", "daemon-reload")
    r = fake_host.run("systemctl", "--user", "start", "clawdbot-gateway")  # suffix added
    assert r.returncode == 0, r.stderr
    assert fake_host.run("systemctl", "--user", "is-active", UNIT).stdout == "active\n"
    r = fake_host.run("systemctl", "--user", "stop", "other.service")
    assert (r.returncode, r.stderr) == (
        5,
        "Failed to stop other.service: Unit other.service not loaded.\n",
    )


def test_enable_disable_symlinks(fake_host: FakeHost) -> None:
    fake_host.add_unit_file(UNIT, fake_host.gateway_unit_text())
    r = fake_host.run("systemctl", "--user", "enable", UNIT)
    link = fake_host.unit_dir / "default.target.wants" / UNIT
    assert r.returncode == 0
    assert r.stderr == f"Created symlink {link} → {fake_host.unit_path(UNIT)}.\n"
    assert os.readlink(link) == str(fake_host.unit_path(UNIT))
    assert fake_host.loaded_units() == [UNIT]  # enable reloads the manager
    assert fake_host.run("systemctl", "--user", "is-enabled", UNIT).stdout == "enabled\n"
    r = fake_host.run("systemctl", "--user", "disable", "--now", UNIT)
    assert (r.returncode, r.stderr) == (0, f'Removed "{link}".\n')
    r = fake_host.run("systemctl", "--user", "is-enabled", UNIT)
    assert (r.returncode, r.stdout) == (1, "disabled\n")
    r = fake_host.run("systemctl", "--user", "enable", "missing.service")
    assert (r.returncode, r.stderr) == (
        1,
        "Failed to enable unit: Unit file missing.service does not exist.\n",
    )


def test_active_unit_listens_in_proc(fake_host: FakeHost) -> None:
    fake_host.install_gateway_unit("work", port=18809, start=False)
    assert listen_ports(fake_host.proc_root) == {}
    fake_host.run("systemctl", "--user", "start", "clawdbot-gateway-work.service")
    [lst] = fake_host.listeners()
    assert (lst["port"], lst["unit"]) == (18809, "clawdbot-gateway-work.service")
    tcp = (fake_host.proc_root / "net/tcp").read_text().splitlines()
    assert tcp[0].startswith("  sl  local_address rem_address   st tx_queue rx_queue")
    assert tcp[1].split()[1:4] == ["0100007F:4979", "00000000:0000", "0A"]
    assert listen_ports(fake_host.proc_root) == {18809: lst["inode"]}
    pid_dir = fake_host.proc_root / str(lst["pid"])
    assert os.readlink(pid_dir / "fd/3") == f"socket:[{lst['inode']}]"
    argv = (pid_dir / "cmdline").read_bytes().split(b"\0")
    assert argv[-1] == b"" and argv[-4:-1] == [b"gateway", b"--port", b"18809"]
    assert "clawdbot-gateway-work.service" in (pid_dir / "cgroup").read_text()
    show = blocks(
        fake_host.run(
            "systemctl",
            "--user",
            "show",
            "clawdbot-gateway-work",
            "-p",
            "MainPID,ActiveEnterTimestamp",
        ).stdout
    )[0]
    assert show["MainPID"] == str(lst["pid"])
    assert time.strptime(show["ActiveEnterTimestamp"], "%a %Y-%m-%d %H:%M:%S UTC")
    fake_host.run("systemctl", "--user", "stop", "clawdbot-gateway-work.service")
    assert fake_host.listeners() == [] and not pid_dir.exists()
    assert listen_ports(fake_host.proc_root) == {}


def test_port_conflict_and_stray_listener(fake_host: FakeHost) -> None:
    pid = fake_host.add_stray_listener(18789)
    fake_host.install_gateway_unit(None, port=18789)
    show = blocks(
        fake_host.run(
            "systemctl", "--user", "show", UNIT, "-p", "ActiveState,SubState,MainPID"
        ).stdout
    )[0]
    assert show == {"MainPID": "0", "ActiveState": "activating", "SubState": "auto-restart"}
    assert [x["unit"] for x in fake_host.listeners()] == [None]
    assert (
        fake_host.proc_root / str(pid) / "cmdline"
    ).read_bytes() == b"python3\0-m\0http.server\x0018789\0"
    fake_host.kill(pid)  # the stray goes away: Restart=always brings the unit up
    assert [x["unit"] for x in fake_host.listeners()] == [UNIT]
    fake_host.stop_unit(UNIT)
    assert fake_host.run("systemctl", "--user", "is-active", UNIT).stdout == "inactive\n"


def test_user_manager_needs_session_or_linger(fake_host: FakeHost) -> None:
    fake_host.install_gateway_unit(None, port=18789)
    fake_host.set_session(False)  # logout without linger: the gateway dies
    assert fake_host.listeners() == []
    r = fake_host.run("systemctl", "--user", "is-active", UNIT)
    assert (r.returncode, r.stderr) == (1, "Failed to connect to bus: No such file or directory\n")
    fake_host.set_linger("user", True)  # the manager starts default.target
    assert [x["unit"] for x in fake_host.listeners()] == [UNIT]
    fake_host.reboot()
    assert [x["unit"] for x in fake_host.listeners()] == [UNIT]
    fake_host.set_linger("user", False)
    fake_host.reboot()
    assert fake_host.listeners() == []


def test_root_reaches_user_manager_only_explicitly(fake_host: FakeHost) -> None:
    fake_host.install_gateway_unit(None, port=18789)
    fake_host.set_caller("root")
    r = fake_host.run("systemctl", "--user", "is-active", UNIT)
    assert r.returncode == 1 and "XDG_RUNTIME_DIR not defined" in r.stderr
    assert (
        fake_host.run("systemctl", "--user", "-M", "user@", "is-active", UNIT).stdout == "active\n"
    )
    r = fake_host.run(
        "runuser",
        "-u",
        "user",
        "--",
        "env",
        "XDG_RUNTIME_DIR=/run/user/1000",
        "systemctl",
        "--user",
        "is-active",
        UNIT,
    )
    assert (r.returncode, r.stdout) == (0, "active\n")
    assert [c["caller"] for c in fake_host.calls()[-2:]] == ["user", "root"]


# --------------------------------------------------------------------------------------------
# faults, snapshots, sudo


def test_fault_injection_fails_nth_mutating_call(fake_host: FakeHost) -> None:
    fake_host.set_operator("user")
    fake_host.add_unit_file(UNIT, fake_host.gateway_unit_text())
    fake_host.fail_mutating_call(2)
    assert fake_host.run("tailscale", "status", "--json").returncode == 0  # read-only: not counted
    assert fake_host.run("systemctl", "--user", "daemon-reload").returncode == 0  # 1st
    before = fake_host.snapshot()
    r = fake_host.run("tailscale", "serve", "--bg", "--yes", "18789")  # 2nd: fails
    assert r.returncode == 1 and "etag mismatch" in r.stderr
    assert fake_host.snapshot() == before
    r = fake_host.run("systemctl", "--user", "start", UNIT)  # 3rd
    assert r.returncode == 0
    fake_host.fail_mutating_call(1)
    r = fake_host.run("sudo", "-n", "loginctl", "enable-linger", "user")
    assert (r.returncode, r.stderr) == (1, "Could not enable linger: Connection timed out\n")
    assert not fake_host.linger()
    fake_host.fail_mutating_call()
    r = fake_host.run("systemctl", "--user", "restart", UNIT)
    assert r.returncode == 1 and r.stderr.startswith(f"Job for {UNIT} failed")
    assert fake_host.mutation_count() == 5
    assert [c["exit"] for c in fake_host.mutating_calls()] == [0, 1, 0, 1, 1]


def test_read_only_calls_leave_host_byte_identical(fake_host: FakeHost) -> None:
    fake_host.install_gateway_unit("work", port=18809)
    fake_host.set_serve_config(
        json.loads((PROBES / "tailscale/serve-status-two-ports.json").read_text())
    )
    fake_host.add_stray_listener(9000)
    before = fake_host.snapshot()
    for argv in (
        ["tailscale", "status", "--json"],
        ["tailscale", "serve", "status", "--json"],
        ["tailscale", "debug", "prefs"],
        ["systemctl", "--user", "show", "clawdbot-gateway-work.service", UNIT, "-p", SHOW_KEYS],
        ["systemctl", "--user", "is-active", "clawdbot-gateway-work.service"],
        ["systemctl", "--user", "list-unit-files", "--no-legend"],
        ["loginctl", "show-user", "user", "-p", "Linger", "--value"],
        ["node", "--version"],
        ["clawdbot", "--version"],
        ["npm", "ls", "-g", "--json", "--depth=0"],
        ["docker", "info", "--format", "{{json .ServerVersion}}"],
        ["sudo", "-n", "tailscale", "serve", "status", "--json"],
    ):
        assert fake_host.run(*argv).returncode in (0, 3), argv
    assert fake_host.snapshot() == before
    assert fake_host.mutation_count() == 0


def test_sudo_refusal_and_prefixes(fake_host: FakeHost) -> None:
    fake_host.allow_sudo(False)
    r = fake_host.run("sudo", "-n", "loginctl", "enable-linger", "user")
    assert (r.returncode, r.stderr) == (1, "sudo: a password is required\n")
    assert not fake_host.linger()
    assert [c["tool"] for c in fake_host.calls()] == ["sudo"]  # the command never ran
    fake_host.allow_sudo([["/usr/bin/loginctl", "enable-linger"]])
    r = fake_host.run(
        "sudo", "-n", "-l", "loginctl", "enable-linger", "user"
    )  # may it? runs nothing
    assert (r.returncode, r.stdout) == (0, f"{fake_host.bin_dir}/loginctl enable-linger user\n")
    assert not fake_host.linger()
    assert fake_host.run("sudo", "-n", "-l", "tailscale", "set", "--operator=user").returncode == 1
    fake_host.clear_calls()
    assert fake_host.run("sudo", "-n", "loginctl", "enable-linger", "user").returncode == 0
    assert fake_host.linger()
    r = fake_host.run("sudo", "-n", "tailscale", "set", "--operator=user")
    assert r.returncode == 1 and r.stderr == "sudo: a password is required\n"
    calls = fake_host.calls()
    assert (calls[-3]["tool"], calls[-3]["caller"], calls[-2]["tool"]) == (
        "loginctl",
        "root",
        "sudo",
    )
    assert calls[-3]["mutating"] and not calls[-2]["mutating"]


# --------------------------------------------------------------------------------------------
# loginctl


def test_linger(fake_host: FakeHost) -> None:
    r = fake_host.run("loginctl", "enable-linger", "user")
    assert (r.returncode, r.stderr) == (1, "Could not enable linger: Access denied\n")
    assert (
        fake_host.run("loginctl", "show-user", "user", "-p", "Linger", "--value").stdout == "no\n"
    )
    assert fake_host.run("loginctl", "enable-linger", "user", caller="root").returncode == 0
    assert (fake_host.linger_dir / "user").is_file()
    assert (
        fake_host.run("loginctl", "show-user", "user", "-p", "Linger", "--value").stdout == "yes\n"
    )
    assert fake_host.run("loginctl", "disable-linger", "user", caller="root").returncode == 0
    assert not (fake_host.linger_dir / "user").exists()
    fake_host.set_session(False)
    r = fake_host.run("loginctl", "show-user", "user", "-p", "Linger", "--value")
    assert r.returncode == 1
    assert r.stderr == (PROBES / "loginctl/stderr-show-user-not-logged-in.txt").read_text()
    r = fake_host.run("loginctl", "show-user", "nobody-here")
    assert (r.returncode, r.stderr) == (1, "Failed to look up user nobody-here: No such process\n")


# --------------------------------------------------------------------------------------------
# node, gateway, npm, docker


def test_node_and_gateway_versions(fake_host: FakeHost) -> None:
    assert fake_host.run("node", "--version").stdout == "v22.12.0\n"
    assert fake_host.run("clawdbot", "--version").stdout == "2026.1.24-3\n"
    with pytest.raises(FileNotFoundError):
        fake_host.run("openclaw", "--version")
    fake_host.set_node(None)
    with pytest.raises(FileNotFoundError):
        fake_host.run("node", "--version")
    r = fake_host.run("clawdbot", "--version")
    assert r.returncode == 127 and "'node': No such file or directory" in r.stderr
    fake_host.set_node("v22.12.0")
    fake_host.set_gateway(None)
    with pytest.raises(FileNotFoundError):
        fake_host.run("clawdbot", "--version")


def test_npm_install_sets_gateway(fake_host: FakeHost) -> None:
    fake_host.set_gateway(None)
    r = fake_host.run("npm", "install", "-g", "clawdbot@2026.1.24-3")
    assert r.returncode == 0 and "added 1 package" in r.stdout
    assert fake_host.run("clawdbot", "--version").stdout == "2026.1.24-3\n"
    ls = json.loads(fake_host.run("npm", "ls", "-g", "--json", "--depth=0").stdout)
    assert ls["dependencies"]["clawdbot"]["version"] == "2026.1.24-3"
    assert fake_host.run("npm", "prefix", "-g").stdout.strip() == str(
        fake_host.home / ".npm-global"
    )
    fake_host.set_npm_prefix("/usr")
    r = fake_host.run("npm", "install", "-g", "openclaw")
    assert r.returncode == 243 and "EACCES" in r.stderr
    assert fake_host.mutation_count() == 2


def test_docker(fake_host: FakeHost) -> None:
    assert (
        fake_host.run("docker", "info", "--format", "{{json .ServerVersion}}").stdout
        == '"27.3.1"\n'
    )
    fake_host.set_docker(in_group=False)
    r = fake_host.run("docker", "info", "--format", "{{json .ServerVersion}}")
    assert (
        r.returncode == 1
        and "permission denied while trying to connect to the Docker daemon socket" in r.stderr
    )
    assert fake_host.run("docker", "info", caller="root").returncode == 0
    fake_host.set_docker(daemon=False)
    r = fake_host.run("docker", "info", "--format", "{{json .ServerVersion}}", caller="root")
    assert (r.returncode, r.stderr) == (
        1,
        "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n",
    )
    fake_host.set_docker(installed=False)
    with pytest.raises(FileNotFoundError):
        fake_host.run("docker", "info")


def test_gateway_serves_http(fake_host: FakeHost) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fake_host.start_gateway_server(port)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
        assert resp.status == 200 and b"<title>Clawdbot Control</title>" in resp.read()
    r = fake_host.run("clawdbot", "gateway", "health", "--url", f"ws://127.0.0.1:{port}", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["ok"] is True
    fake_host.close()
    r = fake_host.run("clawdbot", "gateway", "health", "--url", f"ws://127.0.0.1:{port}", "--json")
    assert r.returncode == 1


# --------------------------------------------------------------------------------------------
# without FakeHost (the systemd-nspawn case: only `tailscale`, default state on first use)


def test_tailscale_creates_default_state(tmp_path: Path) -> None:
    state_dir = tmp_path / "fresh"
    env = {
        "PATH": FakeHost(tmp_path / "unused").env["PATH"],
        "FAKEHOST_STATE": str(state_dir),
        "PYTHONDONTWRITEBYTECODE": "1",
    }

    def run(*a: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN_SRC / "tailscale"), *a], env=env, capture_output=True, text=True
        )

    st = json.loads(run("status", "--json").stdout)
    host = os.uname().nodename.split(".")[0].lower()
    assert (st["BackendState"], st["Self"]["DNSName"]) == ("Running", f"{host}.tail1234.ts.net.")
    assert "https" in st["Self"]["CapMap"]
    assert run("serve", "status", "--json").stdout == "{}\n"
    assert "OperatorUser" not in json.loads(run("debug", "prefs").stdout)
    r = run("serve", "--bg", "--yes", "18789")
    expected = 0 if os.geteuid() == 0 else 1  # the real euid decides who is calling
    assert r.returncode == expected, r.stderr
    assert json.loads((state_dir / "state.json").read_text())["tailscale"]["hostname"] == host


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        | st.dictionaries(st.integers(), inner, max_size=3)
    ),
    max_leaves=20,
)


@given(_JSON_VALUES, st.sampled_from([None, 1, 2, "\t"]), st.booleans(), st.booleans())
def test_the_fakes_json_is_the_json_packages(
    value: object, indent: int | str | None, sort: bool, ascii_only: bool
) -> None:
    # The fakes read and write state.json, counters.json and calls.jsonl, and print tailscale's
    # JSON, without importing the json package (see the next test): the same text it writes (the
    # dry-run law compares state.json byte for byte) and the same values it reads.
    text = json.dumps(value, indent=indent, sort_keys=sort, ensure_ascii=ascii_only)
    assert fs.dumps(value, indent=indent, sort_keys=sort, ensure_ascii=ascii_only) == text
    again, theirs = fs.loads(f" {text}\n"), json.loads(text)
    assert json.dumps(again, sort_keys=True) == json.dumps(theirs, sort_keys=True)
    for bad in ("", "[1,", "{} {}", "tru"):
        with pytest.raises(ValueError):
            fs.loads(bad)


def _imported(stderr: str) -> set[str]:
    """The modules a `python -X importtime` run imported, from its stderr."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "imported package" not in line
    }


def test_invocations_import_only_what_every_call_needs(fake_host: FakeHost) -> None:
    # The laws spawn a few dozen fake tools per example, so a fake's start-up is the suites'
    # cost. _fakestate's contract (its docstring): every call imports only fcntl, os, sys, time
    # and _json (not the json package: `re` and its compiler), and the tool's own module,
    # byte-compiled; the rest lazily when a command needs it (`show` included: it compares unit
    # texts, hashlib's import alone was an eighth of its cost). Checked by the modules imported,
    # not by a wall-clock time, which a loaded machine would break.
    every_call = ["fcntl", "os", "sys", "time", "_json"]
    reference = fake_host.run(
        "python3", "-X", "importtime", "-c", f"import {', '.join(every_call)}"
    )
    assert reference.returncode == 0, reference.stderr
    allowed = _imported(reference.stderr) | {"_fakestate", "_systemctl", "__future__"}
    r = fake_host.run(
        "systemctl",
        "--user",
        "show",
        UNIT,
        "-p",
        SHOW_KEYS,
        env={"PYTHONPROFILEIMPORTTIME": "1"},
    )
    assert r.returncode == 0, r.stderr
    imported = _imported(r.stderr)
    assert "_fakestate" in imported  # the probe sees the fake's imports at all
    assert imported - allowed == set()
