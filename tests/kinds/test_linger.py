"""Linger as data: the flag file in, `loginctl enable-linger|disable-linger` out; blocked where
no systemd runs (issue 12 #6) or the user does not exist (by the planner: `loginctl` needs
both, core/needs.py)."""

from __future__ import annotations

from pathlib import Path

from reconciler.core.action import RunCommand
from reconciler.core.host import HostContext
from reconciler.facts.systemd import LingerProbe, SystemdProbe, SystemdState
from reconciler.kinds.linger import LingerKind

from .helpers import USER, facts, make_host, make_spec, planned


def plan(wanted: bool | None, actual: bool, systemd: SystemdState | None = None):  # type: ignore[no-untyped-def]
    spec = make_spec(linger=wanted)
    values = {LingerProbe("user"): actual} | ({SystemdProbe(): systemd} if systemd else {})
    return planned(LingerKind(), spec, make_host(), facts(values))


def test_turning_linger_on_is_one_root_command() -> None:
    (action,) = plan(True, False).actions
    (op,) = action.operations
    assert isinstance(op, RunCommand)
    assert op.command.argv == ("loginctl", "enable-linger", "user") and op.command.needs_root
    assert action.kind == "create" and action.blocked is None


def test_off_is_disable_linger_and_equal_is_nothing() -> None:
    (action,) = plan(False, True).actions
    assert action.kind == "delete" and action.operations[0].command.argv[1] == "disable-linger"  # type: ignore[union-attr]
    assert plan(True, True).actions == () and plan(None, False).actions == ()
    assert list(LingerKind().probes(make_spec(linger=None), make_host())) == []


def test_without_systemd_linger_is_blocked_naming_pid_1() -> None:
    (action,) = plan(True, False, SystemdState(False, "tini")).actions
    assert action.blocked == "systemd is not running on this host (PID 1 is tini)"


def test_a_missing_user_is_blocked() -> None:
    host = make_host(user=None)
    spec = make_spec(linger=True)
    (action,) = planned(LingerKind(), spec, host, facts({LingerProbe("user"): False})).actions
    assert action.blocked == "user 'user' does not exist on this host"


def test_the_systemd_fact_reads_run_systemd_system_and_pid_1(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "1").mkdir(parents=True)
    (proc / "1" / "comm").write_text("bash\n")
    base = HostContext("vm102", USER, USER, "user", proc_root=proc)
    down = HostContext("vm102", USER, USER, "user", proc_root=proc, systemd_dir=tmp_path / "no")
    assert SystemdProbe().read(down) == SystemdState(False, "bash")
    (tmp_path / "run").mkdir()
    up = HostContext("vm102", USER, USER, "user", proc_root=proc, systemd_dir=tmp_path / "run")
    assert SystemdProbe().read(up).running and SystemdProbe().read(up).blocker() is None
    assert base.systemd_dir == Path("/run/systemd/system")
