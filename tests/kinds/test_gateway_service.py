"""Gateway services: enable/start/restart derived from state, one daemon-reload, health, ports."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from reconciler.core.action import RunCommand, WaitForPort
from reconciler.facts.files import PathState
from reconciler.facts.listeners import Listener
from reconciler.facts.programs import ProgramVersion
from reconciler.facts.systemd import UnitStatus
from reconciler.gateway.paths import profile_paths
from reconciler.kinds.gateway_service import port_holders, stale_reasons
from reconciler.kinds.runtime import RuntimeKind, gateway_probe, node_probe
from reconciler.shell.apply import apply_plan
from reconciler.spec.model import GatewayRuntime, Profile

from .gateway_host import GatewayHost, addresses, gateway_spec
from .helpers import facts, located, make_host

UNIT = "clawdbot-gateway-ops.service"
RUNNING = UnitStatus(
    UNIT,
    load_state="loaded",
    active_state="active",
    unit_file_state="enabled",
    active_enter_s=1000.0,
    main_pid=4106,
)


def at(t: float) -> PathState:
    return PathState(Path("/f"), "file", 0o600, 1000, "user", mtime=t, ctime=t)


def test_stale_when_a_file_changed_after_the_start() -> None:
    assert stale_reasons(RUNNING, [("unit", at(999.0)), ("config", at(1000.0))]) == []
    (reason,) = stale_reasons(RUNNING, [("unit", at(999.0)), ("config", at(1000.5))])
    assert reason.startswith("config changed at")
    # npm keeps tarball mtimes (1985): a fresh install shows in the ctime only
    npm = PathState(Path("/g"), "file", 0o755, 1000, "user", mtime=499162500.0, ctime=1001.0)
    assert stale_reasons(RUNNING, [("gateway", npm)])
    missing = PathState(Path("/m"), "missing")
    assert stale_reasons(RUNNING, [("token", missing)]) == []


def test_stale_when_systemd_needs_a_reload() -> None:
    status = dataclasses.replace(RUNNING, need_daemon_reload=True, active_enter_s=None)
    assert stale_reasons(status, [("unit", at(5000.0))]) == [
        "systemd reports NeedDaemonReload=yes (the unit file changed on disk)"
    ]


def test_port_holders_are_everyone_but_the_service() -> None:
    spec = gateway_spec(Profile("ops", 18809))
    paths = profile_paths(spec, spec.profiles[0], make_host())
    main = Listener("127.0.0.1", 18809, 1000, 1, 4106, "node", ())
    child = Listener("::1", 18809, 1000, 2, 4200, "node", ("user@1000.service", "app.slice", UNIT))
    stray = Listener("127.0.0.1", 18809, 1000, 3, 77, "python3 -m http.server", ())
    hidden = Listener("0.0.0.0", 18809, 0, 4)
    other_port = Listener("127.0.0.1", 18789, 1000, 5, 78, "x", ())
    holders = port_holders(
        spec.profiles[0], paths, RUNNING, [main, child, stray, hidden, other_port]
    )
    assert holders == [stray, hidden]


def test_gateway_package_change_follows_the_runtime_kind() -> None:
    """The rule lives once, in the runtime kind: its install action triggers every service."""
    host = make_host()
    pinned = gateway_spec(Profile("ops", 18809))
    pinned = dataclasses.replace(
        pinned,
        runtime=dataclasses.replace(
            pinned.runtime, gateway=GatewayRuntime("clawdbot", "2026.1.25")
        ),
    )
    where = located(host, node="/usr/bin/node", clawdbot="/g", npm="/usr/bin/npm", docker=None)

    def triggers(spec, version):  # type: ignore[no-untyped-def]
        found = facts(where)
        values = {
            **where,
            node_probe(host, found): ProgramVersion("/usr/bin/node", "v22.12.0"),
            gateway_probe(spec, host, found): ProgramVersion("/g", version),
        }
        plan = RuntimeKind().plan(spec, host, facts(values))
        return [a.triggers for a in plan.actions if a.address == "runtime.gateway"]

    assert triggers(pinned, "2026.1.24-3") == [("profile[ops].service",)]
    assert triggers(pinned, "2026.1.25") == []
    assert triggers(gateway_spec(Profile("ops", 18809)), "2026.1.25") == []


# --- on the fake host ---------------------------------------------------------------------------


def ops(plan, address):  # type: ignore[no-untyped-def]
    action = next(a for a in plan.actions if a.address == address)
    return [op.command.argv[2:] if isinstance(op, RunCommand) else op for op in action.operations]


def test_from_empty_host_then_idempotent(tmp_path: Path) -> None:
    gw = GatewayHost(tmp_path)
    spec = gateway_spec()
    plan = gw.plan(spec)
    order = addresses(plan)
    assert order.index("systemd.daemon-reload") > max(
        order.index("profile[ops].unit"), order.index("profile[personal].unit")
    )
    assert ops(plan, "profile[ops].service") == [
        ("enable", UNIT),
        ("start", UNIT),
    ]
    assert ops(plan, "profile[ops].health") == [WaitForPort(18809, 2)]
    assert order.index("profile[ops].health") > order.index("profile[ops].service")
    reload = next(a for a in plan.actions if a.address == "systemd.daemon-reload")
    assert set(reload.depends_on) == {"profile[ops].unit", "profile[personal].unit"}
    gw.converge(spec)
    for unit, port in ((UNIT, 18809), ("clawdbot-gateway-personal.service", 18789)):
        rt = gw.fake.unit_runtime(unit)
        assert rt["active"] == "active"
        assert any(lst["port"] == port and lst["unit"] == unit for lst in gw.fake.listeners())
    assert "default.target.wants/" + UNIT in gw.fake.enabled_links()
    count = gw.fake.mutation_count()
    assert gw.apply(spec).outcomes == [] and gw.fake.mutation_count() == count


def test_a_needed_restart_survives_a_failed_run(tmp_path: Path) -> None:
    gw = GatewayHost(tmp_path)
    gw.converge(gateway_spec())
    moved = gateway_spec(Profile("ops", 18829), Profile("personal", 18789))
    plan = gw.plan(moved)
    assert ops(plan, "profile[ops].service") == [("restart", UNIT)]
    gw.fake.fail_mutating_call(1)  # the daemon-reload, right after the unit and config writes
    result = apply_plan(plan, gw.runner)
    assert [o.outcome for o in result.outcomes if o.action.address == "systemd.daemon-reload"] == [
        "failed"
    ]
    again = gw.plan(moved)
    assert addresses(again) == [
        "systemd.daemon-reload",
        "profile[ops].service",
        "profile[ops].health",
    ]
    service = next(a for a in again.actions if a.address == "profile[ops].service")
    assert "NeedDaemonReload=yes" in service.reason and "after the start" in service.reason
    # and when the restart itself fails, the next plan still restarts (files newer than start)
    gw.fake.fail_mutating_call(2)
    apply_plan(again, gw.runner)
    third = gw.plan(moved)
    assert addresses(third) == ["profile[ops].service", "profile[ops].health"]
    assert ops(third, "profile[ops].service") == [("restart", UNIT)]
    gw.converge(moved)
    assert any(lst["port"] == 18829 and lst["unit"] == UNIT for lst in gw.fake.listeners())
    assert not any(lst["port"] == 18809 for lst in gw.fake.listeners())


def test_stopped_behind_our_back_is_started(tmp_path: Path) -> None:
    gw = GatewayHost(tmp_path)
    spec = gateway_spec()
    gw.converge(spec)
    gw.fake.stop_unit(UNIT)
    plan = gw.plan(spec)
    assert addresses(plan) == ["profile[ops].service", "profile[ops].health"]
    assert ops(plan, "profile[ops].service") == [("start", UNIT)]
    gw.converge(spec)


def test_a_foreign_listener_is_a_plan_error_naming_the_pid(tmp_path: Path) -> None:
    gw = GatewayHost(tmp_path)
    pid = gw.fake.add_stray_listener(18809, ["python3", "-m", "http.server", "18809"])
    plan = gw.plan(gateway_spec())
    (error,) = plan.errors
    assert f"PID {pid} (python3 -m http.server 18809)" in error
    assert error.startswith("profile[ops].service: port 18809")


def test_without_a_user_manager_services_wait_for_linger(tmp_path: Path) -> None:
    gw = GatewayHost(tmp_path, linger=False)
    gw.fake.set_session(False)  # no login session, no linger: "Failed to connect to bus"
    plan = gw.plan(gateway_spec())
    service = next(a for a in plan.actions if a.address == "profile[ops].service")
    assert "linger" in service.depends_on and service.blocked is None
    assert ops(plan, "profile[ops].service") == [("enable", UNIT), ("start", UNIT)]
    unmanaged = gw.plan(gateway_spec(linger=None))
    service = next(a for a in unmanaged.actions if a.address == "profile[ops].service")
    assert service.blocked and "Failed to connect to bus" in service.blocked
    assert "linger: true" in service.blocked


def test_missing_user_blocks_every_action_and_is_no_error(tmp_path: Path) -> None:
    gw = GatewayHost(tmp_path)
    host = dataclasses.replace(gw.host, user=None, user_name="nobody-here")
    from reconciler.app.plan_pass import probe_and_plan

    from .gateway_host import KINDS

    spec = dataclasses.replace(
        gateway_spec(), host=dataclasses.replace(gateway_spec().host, user="nobody-here")
    )
    plan = probe_and_plan(spec, host, gw.runner, KINDS).plan
    mine = [a for a in plan.actions if a.address.startswith("profile[")]
    assert {a.address for a in mine} >= {
        "profile[ops].state",
        "profile[ops].workspace",
        "profile[ops].config",
        "profile[ops].unit",
        "profile[ops].service",
    }
    assert all(a.blocked for a in mine)
    assert all(
        "does not exist" in (a.blocked or "") for a in mine if a.address != "profile[ops].service"
    )
    assert not plan.errors
    assert not os.path.exists(Path("~nobody-here"))


def test_registered_in_all_kinds() -> None:
    from reconciler.kinds import all_kinds

    names = [k.name for k in all_kinds()]
    for name in (
        "profile.state",
        "profile.config",
        "profile.unit",
        "unit.legacy",
        "profile.service",
    ):
        assert name in names
    assert names.index("profile.service") > names.index("unit.legacy") > names.index("profile.unit")


def test_disabled_but_running_is_only_enabled(tmp_path: Path) -> None:
    gw = GatewayHost(tmp_path)
    spec = gateway_spec()
    gw.converge(spec)
    assert gw.fake.run("systemctl", "--user", "disable", UNIT).returncode == 0
    plan = gw.plan(spec)
    assert addresses(plan) == ["profile[ops].service"]  # no restart, so no health check
    assert ops(plan, "profile[ops].service") == [("enable", UNIT)]


def test_without_systemd_every_unit_step_is_blocked_naming_pid_1(tmp_path: Path) -> None:
    """Issue 12 #6: a host whose PID 1 is not systemd (a plain container) gets no runnable
    linger, unit, service or health step; each says why."""
    gw = GatewayHost(tmp_path, linger=False)
    gw.host = dataclasses.replace(gw.host, systemd_dir=tmp_path / "no-systemd")
    plan = gw.plan(gateway_spec(linger=True))
    systemd_steps = [
        a
        for a in plan.actions
        if a.address == "linger" or a.address.endswith((".unit", ".service"))
    ]
    assert {a.address for a in systemd_steps} >= {
        "linger",
        "profile[ops].unit",
        "profile[ops].service",
    }
    for action in systemd_steps:
        assert action.blocked is not None
        assert "systemd is not running on this host (PID 1 is " in action.blocked or (
            "waits for" in action.blocked
        )
    # what needs no systemd still runs: the state directories and the config
    assert not next(a for a in plan.actions if a.address == "profile[ops].state").blocked
