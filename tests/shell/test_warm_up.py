"""The switch warms a version no unit runs yet up first, while the old one serves
(shell/switch.py `run_warm_up`, planned by kinds/_switch.py `warm_up_for`), on the fake host:
every branch (ready, fails, times out, already warm, killed half way), and what it never does
(touch the profile's state, block the switch, show the token, run in a plan)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
from kinds.gateway_host import GatewayHost, gateway_spec

from reconciler.core.action import Action, GatedSwitch
from reconciler.core.command import Command, CommandResult
from reconciler.core.plan import Plan
from reconciler.gateway.addresses import unit_address
from reconciler.render.human import render_plan
from reconciler.shell.apply import ApplyResult, apply_plan
from reconciler.shell.runner import HostRunner
from reconciler.spec.model import GatewayRuntime, Node, Profile, Runtime, Spec

OLD, NEW = "2026.1.24-3", "2026.2.1"
UNIT = "clawdbot-gateway-ops.service"
WARM_UP = "reconciler-warm-up-ops.service"


def spec(
    version: str, *profiles: Profile, start_timeout_s: float = 2, warm_up: bool = True
) -> Spec:
    base = gateway_spec(*(profiles or (Profile("ops", 18809, auth="token"),)))
    runtime = GatewayRuntime(
        "clawdbot",
        version=version,
        install="versioned",
        start_timeout_s=start_timeout_s,
        health_window_s=0,
        warm_up=warm_up,
    )
    return dataclasses.replace(base, runtime=Runtime(node=Node(range=">=22.12"), gateway=runtime))


@pytest.fixture
def gw(tmp_path: Path) -> GatewayHost:
    """ops runs OLD from its versioned install; NEW is in the registry, never run here."""
    gw = GatewayHost(tmp_path)
    gw.fake.set_npm_registry({"clawdbot": {OLD: "ok", NEW: "ok"}})
    gw.converge(spec(OLD))
    gw.fake.clear_calls()
    return gw


def unit_action(plan: Plan, profile: str = "ops") -> Action:
    return next(a for a in plan.actions if a.address == unit_address(profile))


def switch_of(action: Action) -> GatedSwitch:
    return next(op for op in action.operations if isinstance(op, GatedSwitch))


def outcome(result: ApplyResult, profile: str = "ops") -> tuple[str, str]:
    found = next(o for o in result.outcomes if o.action.address == unit_address(profile))
    return found.outcome, found.detail


def warm_dir(gw: GatewayHost) -> Path:
    return gw.home / ".cache/reconciler/warm-up/ops"


def run_calls(gw: GatewayHost) -> list[list[str]]:
    return [c["argv"] for c in gw.fake.calls() if c["tool"] == "systemd-run"]


def test_the_plan_says_it_warms_up_first_and_runs_nothing(gw: GatewayHost) -> None:
    plan = gw.plan(spec(NEW))
    action = unit_action(plan)
    op = switch_of(action)
    assert op.warm_up is not None
    assert op.warm_up.unit == WARM_UP
    assert op.warm_up.program == exec_words(gw, NEW)
    assert op.warm_up.directory == warm_dir(gw)
    assert op.warm_up.timeout_s == 2
    assert f"{OLD} -> {NEW} (warmed up first while {OLD} serves)" in action.reason
    text = render_plan(plan, lambda c: c.display(), color=False)
    assert "warm the new version up first while the old one serves" in text
    assert WARM_UP in text
    # Planning (what apply --dry-run shows) starts nothing.
    assert run_calls(gw) == [] and gw.fake.mutating_calls() == []


def exec_words(gw: GatewayHost, version: str) -> tuple[str, ...]:
    """What the new unit runs before `gateway`: node and the version's entry point."""
    prefix = gw.home / ".local/lib/clawdbot" / version
    node = next(
        line.split("=", 1)[1].split()[0]
        for line in gw.fake.unit_path(UNIT).read_text().splitlines()
        if line.startswith("ExecStart=")
    )
    return (node, str(prefix / "node_modules/clawdbot/dist/entry.js"))


def test_a_ready_warm_up_runs_before_the_stop_on_throwaway_state(gw: GatewayHost) -> None:
    state = gw.home / ".clawdbot-ops"
    before = sorted(p.name for p in state.iterdir())
    result = gw.apply(spec(NEW))
    done, detail = outcome(result)
    assert done == "applied", detail
    assert f"ops: {OLD} -> {NEW}, healthy (downtime " in detail
    assert "; warmed up in " in detail
    (argv,) = run_calls(gw)
    port = argv[argv.index("--port") + 1]
    assert argv[:5] == ["systemd-run", "--user", f"--unit={WARM_UP}", "--collect", "--quiet"]
    assert "--property=RuntimeMaxSec=62" in argv  # 2 s to be ready, 30 s to stop, 30 s more
    assert "--property=KillMode=mixed" in argv
    assert f"--setenv=HOME={warm_dir(gw)}" in argv
    assert f"--setenv=CLAWDBOT_STATE_DIR={warm_dir(gw)}/state" in argv
    assert f"--setenv=CLAWDBOT_GATEWAY_PORT={port}" in argv and port != "18809"
    assert argv[argv.index("--") + 1 :][-3:] == ["gateway", "--port", port]
    # It does not announce itself on the LAN beside the real gateway (mDNS off).
    assert "--setenv=CLAWDBOT_DISABLE_BONJOUR=1" in argv
    # The token comes from a file, never through argv (nor the profile's token).
    assert f"--property=EnvironmentFile={warm_dir(gw)}/gateway.env" in argv
    assert not any("TOKEN" in word for word in argv)
    # Warmed while the old gateway served: the transient unit ran before the switch's stop.
    calls = [c["argv"] for c in gw.fake.calls() if c["mutating"]]
    started = calls.index(argv)
    stop_old = calls.index(["systemctl", "--user", "stop", UNIT])
    stop_warm = calls.index(["systemctl", "--user", "stop", WARM_UP], started)
    assert started < stop_warm < stop_old
    # Nothing left: the transient unit stopped and collected, the throwaway directory gone, the
    # profile's state untouched by it (the switch's own copy aside).
    assert WARM_UP not in gw.fake.loaded_units() and not gw.fake.unit_runtime(WARM_UP)
    assert not warm_dir(gw).exists()
    assert sorted(p.name for p in state.iterdir()) == before
    assert not any(p.get("unit") == WARM_UP for p in gw.fake.processes().values())
    # The next plan has nothing to do, and would warm nothing up.
    assert not gw.plan(spec(NEW)).runnable


def test_the_throwaway_state_is_private_and_points_the_gateway_away_from_the_home(
    gw: GatewayHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, object] = {}
    real = gw.runner.run

    def run(command: Command) -> CommandResult:
        if command.argv[:1] == ("systemd-run",):
            directory = warm_dir(gw)
            seen["modes"] = {
                p.name: p.stat().st_mode & 0o777
                for p in (directory, directory / "state", directory / "gateway.env")
            }
            seen["config"] = json.loads((directory / "state/clawdbot.json").read_text())
        return real(command)

    monkeypatch.setattr(gw.runner, "run", run)
    assert gw.apply(spec(NEW)).ok
    assert seen["modes"] == {"ops": 0o700, "state": 0o700, "gateway.env": 0o600}
    config = seen["config"]
    assert isinstance(config, dict)
    assert config["gateway"]["mode"] == "local" and config["gateway"]["bind"] == "loopback"
    assert config["agents"]["defaults"]["workspace"] == f"{warm_dir(gw)}/workspace"


def test_a_warm_up_whose_gateway_exits_does_not_block_the_switch(gw: GatewayHost) -> None:
    gw.fake.set_start_behaviour(f"/{NEW}/", "fail", unit=WARM_UP, journal=["boom"])
    result = gw.apply(spec(NEW))
    done, detail = outcome(result)
    assert done == "applied", detail
    assert f"ops: {OLD} -> {NEW}, healthy" in detail
    assert "warm-up failed after" in detail and "exited before it answered" in detail
    assert f"journalctl --user -u {WARM_UP}" in detail
    assert f"/{NEW}/" in gw.fake.unit_path(UNIT).read_text()
    assert WARM_UP not in gw.fake.loaded_units() and not warm_dir(gw).exists()
    assert gw.fake.journal_lines(WARM_UP) == ["boom"]


def test_a_warm_up_that_never_answers_is_stopped_at_its_deadline(gw: GatewayHost) -> None:
    gw.fake.set_start_behaviour(f"/{NEW}/", "unhealthy", unit=WARM_UP)
    result = gw.apply(spec(NEW))
    done, detail = outcome(result)
    assert done == "applied", detail
    assert "warm-up stopped after " in detail and ": not ready within 2 s (" in detail
    assert "1011" in detail  # what its `gateway health` said last
    assert WARM_UP not in gw.fake.loaded_units() and not warm_dir(gw).exists()
    # The run record keeps it too.
    report = next(o for o in result.outcomes if o.action.address == unit_address("ops"))
    records = [r.report.record() for r in report.operations if r.report is not None]
    assert records[0]["warm_up"]["outcome"] == "timed-out"


def test_a_version_a_unit_runs_already_is_not_warmed_up(tmp_path: Path) -> None:
    gw = GatewayHost(tmp_path)
    gw.fake.set_npm_registry({"clawdbot": {OLD: "ok", NEW: "ok"}})
    ops, personal = Profile("ops", 18809), Profile("personal", 18789)
    canary = dataclasses.replace(personal, gateway_version=NEW)
    gw.converge(spec(OLD, ops, canary))  # personal runs NEW already
    plan = gw.plan(spec(NEW, ops, personal))
    action = unit_action(plan)
    assert switch_of(action).warm_up is None
    assert "warmed up" not in action.reason
    gw.fake.clear_calls()
    result = apply_plan(plan, gw.runner)
    done, detail = outcome(result)
    assert done == "applied" and "warm" not in detail, detail
    assert run_calls(gw) == []


def test_a_spec_that_turns_warm_ups_off_switches_cold_and_the_plan_says_so(
    gw: GatewayHost,
) -> None:
    """`runtime.gateway.warm_up: false` (a host too small for two gateways at once): the plan
    says the first start is cold, apply starts no transient unit, and the switch is still the
    gated one (healthy: kept)."""
    cold = spec(NEW, warm_up=False)
    plan = gw.plan(cold)
    action = unit_action(plan)
    op = switch_of(action)
    assert op.warm_up is None
    assert f"{OLD} -> {NEW} (cold first start: runtime.gateway.warm_up is false);" in action.reason
    text = render_plan(plan, lambda c: c.display(), color=False)
    assert "warm the new version up" not in text and "runtime.gateway.warm_up is false" in text
    result = apply_plan(plan, gw.runner)
    done, detail = outcome(result)
    assert done == "applied" and f"ops: {OLD} -> {NEW}, healthy" in detail, detail
    assert "warm" not in detail
    assert run_calls(gw) == [] and not warm_dir(gw).exists()
    assert not gw.plan(cold).runnable


def test_warm_up_off_says_nothing_when_the_version_runs_already(tmp_path: Path) -> None:
    """Only a first start is cold: a version another unit runs is not called cold."""
    gw = GatewayHost(tmp_path)
    gw.fake.set_npm_registry({"clawdbot": {OLD: "ok", NEW: "ok"}})
    ops, personal = Profile("ops", 18809), Profile("personal", 18789)
    gw.converge(spec(OLD, ops, dataclasses.replace(personal, gateway_version=NEW)))
    action = unit_action(gw.plan(spec(NEW, ops, personal, warm_up=False)))
    assert switch_of(action).warm_up is None
    assert "warm" not in action.reason


def test_two_profiles_moving_to_the_same_version_warm_it_up_once(tmp_path: Path) -> None:
    gw = GatewayHost(tmp_path)
    gw.fake.set_npm_registry({"clawdbot": {OLD: "ok", NEW: "ok"}})
    two = (Profile("ops", 18809), Profile("personal", 18789))
    gw.converge(spec(OLD, *two))
    gw.fake.clear_calls()
    plan = gw.plan(spec(NEW, *two))
    # Both are planned with it (neither runs NEW yet); the runner does it once.
    assert all(switch_of(unit_action(plan, p.name)).warm_up for p in two)
    result = apply_plan(plan, gw.runner)
    assert result.ok
    assert len(run_calls(gw)) == 1
    details = [outcome(result, p.name)[1] for p in two]
    assert sum("warmed up in" in d for d in details) == 1


stop_argv = ["systemctl", "--user", "stop"]


class Killed(BaseException):
    """The reconciler dies here (kill -9): nothing after this point runs."""


def test_a_reconciler_killed_mid_warm_up_leaves_nothing_the_next_apply_trips_on(
    gw: GatewayHost,
) -> None:
    class DiesWhileWarming(HostRunner):
        def run(self, command: Command) -> CommandResult:
            if command.argv[-3:] == ("gateway", "health", "--json") and any(
                "warm-up" in word for word in command.argv
            ):
                raise Killed
            return super().run(command)

    killer = DiesWhileWarming(gw.host, env=gw.fake.env, sleep=lambda s: None)
    plan = gw.plan(spec(NEW))
    with pytest.raises(Killed):
        apply_plan(plan, killer)
    # Killed while the old version served: nothing of the switch began (no intent, the old
    # unit running); the warm-up's gateway runs on until its RuntimeMaxSec.
    assert gw.fake.unit_runtime(WARM_UP)["active"] == "active"
    assert warm_dir(gw).exists()
    assert f"/{OLD}/" in gw.fake.unit_path(UNIT).read_text()
    assert gw.fake.unit_runtime(UNIT)["active"] == "active"
    again = gw.plan(spec(NEW))
    assert not again.errors
    assert "never finished" not in unit_action(again).reason
    gw.fake.clear_calls()
    result = apply_plan(again, HostRunner(gw.host, env=gw.fake.env, sleep=lambda s: None))
    done, detail = outcome(result)
    assert done == "applied", detail
    assert "warmed up in" in detail
    stops = [c["argv"][-1] for c in gw.fake.calls() if c["argv"][:3] == stop_argv]
    # The leftover stopped first, so that systemd-run could use its name again.
    assert stops[0] == WARM_UP
    assert WARM_UP not in gw.fake.loaded_units() and not warm_dir(gw).exists()
    assert not gw.plan(spec(NEW)).runnable


def test_a_leftover_ends_by_itself_at_its_runtime_max(gw: GatewayHost) -> None:
    """What --collect and RuntimeMaxSec= promise when nobody stops it (the fake's clock)."""
    run = gw.fake.run(
        "systemd-run",
        "--user",
        f"--unit={WARM_UP}",
        "--collect",
        "--property=RuntimeMaxSec=1",
        "--",
        "sleep",
        "600",
    )
    assert run.returncode == 0 and f"Running as unit: {WARM_UP}" in run.stderr
    again = gw.fake.run("systemd-run", "--user", f"--unit={WARM_UP}", "--", "sleep", "1")
    assert again.returncode == 1
    assert again.stderr.strip() == (
        "Failed to start transient service unit: Unit "
        f"{WARM_UP} was already loaded or has a fragment file."
    )
    time.sleep(1.2)  # the fake settles RuntimeMaxSec= against the wall clock
    show = gw.fake.run("systemctl", "--user", "show", WARM_UP, "-p", "ActiveState")
    assert show.stdout.strip() == "ActiveState=inactive"
    assert WARM_UP not in gw.fake.loaded_units()
