"""Listeners from /proc: the kernel's tcp tables, fd links and cgroups (recorded real format)."""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.core.host import Account, HostContext
from reconciler.facts.listeners import (
    ListenersProbe,
    Socket,
    parse_cgroup,
    parse_cmdline,
    parse_proc_net_tcp,
    socket_inode,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "probes" / "proc"
USER = Account("user", 1000, 1000, Path("/home/user"))


def test_ipv4_listeners_only() -> None:
    sockets = parse_proc_net_tcp((DATA / "net-tcp.txt").read_text())
    assert sockets == (
        Socket("0.0.0.0", 22, 0, 21520),
        Socket("127.0.0.53", 53, 101, 19873),
        Socket("127.0.0.1", 18789, 1000, 52100),
        Socket("127.0.0.1", 18791, 1000, 52106),
    )  # the ESTABLISHED and TIME_WAIT rows are not listeners


def test_ipv6_listeners() -> None:
    sockets = parse_proc_net_tcp((DATA / "net-tcp6.txt").read_text())
    assert sockets == (Socket("::", 22, 0, 21531), Socket("::1", 18789, 1000, 52103))


def test_fd_links_cmdline_and_cgroups() -> None:
    assert socket_inode("socket:[52100]") == 52100
    assert socket_inode("/dev/null") is None and socket_inode("pipe:[7]") is None
    cmdline = parse_cmdline((DATA / "cmdline-gateway.bin").read_bytes())
    assert cmdline.endswith("dist/entry.js gateway --port 18789")
    assert parse_cgroup((DATA / "cgroup-user-service.txt").read_text())[-1] == (
        "clawdbot-gateway-ops.service"
    )
    assert parse_cgroup((DATA / "cgroup-session.txt").read_text())[-1] == "session-3.scope"
    assert parse_cgroup((DATA / "cgroup-v1-hybrid.txt").read_text())[-1] == (
        "clawdbot-gateway.service"
    )
    assert parse_cgroup((DATA / "cgroup-v1-only.txt").read_text())[-1] == (
        "clawdbot-gateway.service"
    )


def _proc(tmp_path: Path) -> Path:
    proc = tmp_path / "proc"
    (proc / "net").mkdir(parents=True)
    (proc / "net" / "tcp").write_text((DATA / "net-tcp.txt").read_text())
    (proc / "net" / "tcp6").write_text((DATA / "net-tcp6.txt").read_text())
    for pid, inode, cgroup in ((4106, 52100, "cgroup-user-service.txt"), (77, 19873, None)):
        fd = proc / str(pid) / "fd"
        fd.mkdir(parents=True)
        os.symlink("/dev/null", fd / "0")
        os.symlink(f"socket:[{inode}]", fd / "3")
        (proc / str(pid) / "cmdline").write_bytes((DATA / "cmdline-gateway.bin").read_bytes())
        if cgroup:
            (proc / str(pid) / "cgroup").write_text((DATA / cgroup).read_text())
    return proc


def test_probe_names_the_process_of_each_listener(tmp_path: Path) -> None:
    proc = _proc(tmp_path)
    host = HostContext("vm102", USER, USER, "user", proc_root=proc)
    found = ListenersProbe((18789,)).read(host)
    by_address = {lst.address: lst for lst in found}
    assert set(by_address) == {"127.0.0.1", "::1"}
    v4 = by_address["127.0.0.1"]
    assert v4.pid == 4106 and v4.in_unit("clawdbot-gateway-ops.service")
    assert "PID 4106" in v4.describe()
    hidden = by_address["::1"]  # inode 52103 is in no fd we can see
    assert hidden.pid is None and "uid 1000" in hidden.describe()
    assert ListenersProbe((9,)).read(host) == ()


def test_probe_without_ipv6(tmp_path: Path) -> None:
    proc = _proc(tmp_path)
    (proc / "net" / "tcp6").unlink()
    host = HostContext("vm102", USER, USER, "user", proc_root=proc)
    assert [lst.port for lst in ListenersProbe((18789, 18791)).read(host)] == [18789, 18791]
