"""The unit kind plans a version change of a running gateway as a health-gated switch
(kinds/_switch.py): versions in the reason, rollback named, bad versions blocked, interrupted
switches checked again; apply reports the downtime."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from file_tree import file_tree

from reconciler.core.action import WARM_UP_STOP_S, Action, GatedSwitch, WriteFile
from reconciler.core.command import Command, CommandResult
from reconciler.core.plan import Plan
from reconciler.facts.switches import BAD_VERSIONS, memory_dir
from reconciler.gateway.addresses import unit_address
from reconciler.kinds._switch import exec_program
from reconciler.render.human import render_plan
from reconciler.shell.apply import apply_plan
from reconciler.spec.model import GatewayRuntime, Node, Profile, Runtime, Spec
from reconciler.unattended.runs import outcome_of

from .gateway_host import GatewayHost, gateway_spec

OLD, NEW = "2026.1.24-3", "2026.2.1"
UNIT = "clawdbot-gateway-ops.service"


def versioned_spec(version: str = NEW, **gateway: object) -> Spec:
    spec = gateway_spec(Profile("ops", 18809))
    runtime = GatewayRuntime(
        "clawdbot",
        version=version,
        install="versioned",
        start_timeout_s=2,
        health_window_s=0,
        **gateway,  # type: ignore[arg-type]
    )
    return dataclasses.replace(spec, runtime=Runtime(node=Node(range=">=22.12"), gateway=runtime))


@pytest.fixture
def gw(tmp_path: Path) -> GatewayHost:
    """ops runs OLD from its versioned install (converged by the engine itself)."""
    gw = GatewayHost(tmp_path)
    gw.fake.set_npm_registry({"clawdbot": {OLD: "ok", NEW: "ok", "2026.2.2": "ok"}})
    gw.converge(versioned_spec(OLD))
    assert f"/{OLD}/" in gw.fake.unit_path(UNIT).read_text()
    gw.fake.clear_calls()
    return gw


def old_unit(gw: GatewayHost) -> str:
    return gw.fake.unit_path(UNIT).read_text()


def unit_action(plan: Plan) -> Action:
    return next(a for a in plan.actions if a.address == unit_address("ops"))


def switch_of(action: Action) -> GatedSwitch:
    return next(op for op in action.operations if isinstance(op, GatedSwitch))


def test_a_running_gateway_moving_version_is_a_gated_switch(gw: GatewayHost) -> None:
    plan = gw.plan(versioned_spec())
    action = unit_action(plan)
    op = switch_of(action)
    assert (op.from_version, op.to_version) == (OLD, NEW)
    assert not any(isinstance(o, WriteFile) and o.path == op.unit_file for o in action.operations)
    assert f"profile ops: {OLD} -> {NEW}" in action.reason
    assert f"if unhealthy within 2 s (or crashing within 0 s after): roll back to {OLD}" in (
        action.reason
    )
    assert action.triggers == ("profile[ops].service",)  # no daemon-reload: it reloads itself
    # No --url: the CLI asks its local gateway on the port from the environment (openclaw
    # 2026.9 refuses --url without --token, and a token in argv is visible in /proc).
    health = ("gateway", "health", "--json")
    assert op.check.argv[-3:] == op.rollback_check.argv[-3:] == health
    assert "CLAWDBOT_GATEWAY_PORT=18809" in op.check.argv[:5]
    assert not any("--url" in w or "--token" in w for w in op.check.argv)
    # The rollback is checked with the old version's own CLI, as its unit ran it.
    assert op.rollback_check.argv[5:-3] == exec_program(old_unit(gw))
    assert op.check.argv[5:-3] == exec_program(op.content)
    assert op.memory == memory_dir(gw.home)
    text = render_plan(plan, lambda c: c.display(), color=False)
    assert f"{OLD} -> {NEW}" in text and f"roll back to {OLD}" in text
    # The service waits for the switch and does not restart the gateway a second time.
    service = next((a for a in plan.actions if a.address == "profile[ops].service"), None)
    assert service is None or not any("restart" in str(op) for op in service.operations)
    assert service is None or unit_address("ops") in service.depends_on
    # After its version's install; after a config write (none here) that its copy must hold.
    assert action.depends_on == ("gateway.version[2026.2.1]",)
    assert "profile[ops].config" in action.after


def test_a_stopped_gateway_gets_a_plain_write(gw: GatewayHost) -> None:
    gw.fake.set_unit_state(UNIT, "inactive")
    action = unit_action(gw.plan(versioned_spec()))
    assert not any(isinstance(op, GatedSwitch) for op in action.operations)


def test_a_version_marked_bad_is_blocked_with_the_retry_command(gw: GatewayHost) -> None:
    memory = memory_dir(gw.home)
    memory.mkdir(parents=True, mode=0o700)
    mark = {"version": NEW, "failed_at": "2026-11-29T11:02:03+00:00", "reason": "exit 1"}
    (memory / BAD_VERSIONS).write_text(json.dumps({"profiles": {"ops": mark}}))
    action = unit_action(gw.plan(versioned_spec()))
    assert action.blocked == (
        f"{NEW} failed its health check at 2026-11-29T11:02:03+00:00 and was rolled back "
        "(exit 1); change the version or run `reconciler update SPEC --retry ops`"
    )
    # Another version is not blocked by that mark.
    other = unit_action(gw.plan(versioned_spec("2026.2.2")))
    assert other.blocked is None and switch_of(other).to_version == "2026.2.2"


def test_an_unreadable_memory_is_a_plan_error_naming_the_file(gw: GatewayHost) -> None:
    memory = memory_dir(gw.home)
    memory.mkdir(parents=True, mode=0o700)
    (memory / BAD_VERSIONS).write_text("{not json")
    plan = gw.plan(versioned_spec())
    assert any(str(memory / BAD_VERSIONS) in e and "move it away" in e for e in plan.errors)


def test_an_interrupted_switch_is_checked_again_although_the_unit_is_written(
    gw: GatewayHost,
) -> None:
    spec = versioned_spec()
    op = switch_of(unit_action(gw.plan(spec)))
    # The run that started the switch died after writing the unit.
    gw.fake.add_unit_file(UNIT, op.content)
    gw.fake.daemon_reload()
    here = memory_dir(gw.home) / "switch" / "ops"
    here.mkdir(parents=True)
    (here / "intent.json").write_text(
        json.dumps({"from": OLD, "to": NEW, "started_at": "2026-11-29T11:00:00+00:00"})
    )
    action = unit_action(gw.plan(spec))
    resumed = switch_of(action)
    assert (resumed.from_version, resumed.to_version) == (OLD, NEW)
    assert action.reason.startswith(
        f"a switch of profile ops to {NEW} started at 2026-11-29T11:00:00+00:00 and never "
        "finished; "
    )


def test_apply_installs_then_switches_and_reports_the_downtime(gw: GatewayHost) -> None:
    result = gw.apply(versioned_spec())
    outcomes = {o.action.address: o for o in result.outcomes}
    assert outcomes["gateway.version[2026.2.1]"].outcome == "applied"
    switched = outcomes[unit_address("ops")]
    assert switched.outcome == "applied", switched.detail
    assert switched.detail.startswith(f"ops: {OLD} -> {NEW}, healthy (downtime ")
    plan = gw.plan(versioned_spec())
    (record,) = outcome_of(plan, result, after=plan).switches
    assert record["profile"] == "ops" and record["outcome"] == "switched"
    assert isinstance(record["downtime_s"], float) and record["downtime_s"] >= 0
    assert f"/{NEW}/" in gw.fake.unit_path(UNIT).read_text()
    assert not plan.runnable, [a.address for a in plan.runnable]  # converged in one pass


WARM_UP_UNIT = "reconciler-warm-up-ops.service"


def test_every_restart_of_a_switch_outlasts_the_units_stop_timeout(
    gw: GatewayHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unit declares TimeoutStopSec; the switch's restarts (and the rollback's) wait
    longer than that, so a gateway slow to stop is SIGKILLed by systemd, not abandoned by us
    (tried here: a 30 s deadline against systemd's default 90 s rolled back a healthy switch)."""
    seen: list[Command] = []
    real = gw.runner.run

    def run(command: Command) -> CommandResult:
        seen.append(command)
        return real(command)

    monkeypatch.setattr(gw.runner, "run", run)
    gw.fake.set_start_behaviour(f"/{NEW}/", "fail")
    gw.apply(versioned_spec())
    restarts = [c for c in seen if c.argv[:3] == ("systemctl", "--user", "restart")]
    assert len(restarts) == 2  # the switch, then the rollback
    stop = next(
        int(line.split("=")[1])
        for line in gw.fake.unit_path(UNIT).read_text().splitlines()
        if line.startswith("TimeoutStopSec=")
    )
    stops = [c for c in seen if c.argv[:4] == ("systemctl", "--user", "stop", UNIT)]
    assert len(stops) == 2  # before the state copy, before putting it back
    assert all(c.timeout_s > stop for c in (*restarts, *stops))
    # The warm-up's transient unit too (its TimeoutStopSec is WARM_UP_STOP_S): a leftover's
    # stop before it starts, and its own stop once it failed.
    warm_stops = [c for c in seen if c.argv[:4] == ("systemctl", "--user", "stop", WARM_UP_UNIT)]
    assert len(warm_stops) == 2
    assert all(c.timeout_s > WARM_UP_STOP_S for c in warm_stops)


def test_a_failed_install_skips_the_switch_no_downtime(gw: GatewayHost) -> None:
    gw.fake.set_npm_registry({"clawdbot": {OLD: "ok", NEW: "broken"}})
    before = old_unit(gw)
    result = gw.apply(versioned_spec())
    outcomes = {o.action.address: o for o in result.outcomes}
    assert outcomes["gateway.version[2026.2.1]"].outcome == "failed"
    assert outcomes[unit_address("ops")].outcome == "skipped"
    assert gw.fake.unit_path(UNIT).read_text() == before
    assert [c for c in gw.fake.mutating_calls() if c["tool"] == "systemctl"] == []


def test_apply_of_a_version_that_does_not_start_rolls_back_and_the_next_plan_blocks_it(
    gw: GatewayHost,
) -> None:
    before = old_unit(gw)
    gw.fake.set_start_behaviour(f"/{NEW}/", "fail", journal=["ERR_MODULE_NOT_FOUND"])
    spec = versioned_spec()
    result = gw.apply(spec)
    outcome = next(o for o in result.outcomes if o.action.address == unit_address("ops"))
    assert outcome.outcome == "failed"
    assert outcome.detail.startswith(f"rolled back to {OLD}: its process ended")
    assert "ERR_MODULE_NOT_FOUND" in outcome.detail
    assert gw.fake.unit_path(UNIT).read_text() == before
    again = gw.plan(spec)
    blocked = unit_action(again).blocked
    assert blocked is not None and blocked.startswith(f"{NEW} failed its health check at ")
    # The old version is kept (ops runs it), the gateway answers, nothing else is pending.
    assert (gw.home / ".local/lib/clawdbot" / OLD).is_dir()
    assert [a.address for a in again.runnable] == []


@pytest.mark.parametrize("starts", [True, False], ids=["new-healthy", "new-broken"])
def test_after_a_kill_mid_switch_the_next_apply_converges(gw: GatewayHost, starts: bool) -> None:
    """kill -9 of the reconciler after it wrote the unit and restarted: the intent file and
    the copies are left; the next apply runs the gate again and ends converged (healthy), or
    rolled back to what ran before the first attempt (and the version blocked)."""
    spec = versioned_spec()
    before = old_unit(gw)
    config = gw.home / ".clawdbot-ops" / "clawdbot.json"
    config_before = config.read_bytes()
    plan = gw.plan(spec)
    install = next(a for a in plan.actions if a.address == "gateway.version[2026.2.1]")
    op = switch_of(unit_action(plan))
    assert apply_plan(dataclasses.replace(plan, actions=(install,)), gw.runner).ok
    # What the killed run left: its copies and intent, the new unit, a restarted gateway.
    from reconciler.facts.switches import SwitchIntent
    from reconciler.shell.switch import save_copies

    intent = SwitchIntent(OLD, NEW, "2026-11-29T11:00:00+00:00")
    save_copies(op.memory, "ops", op.unit_file, op.config, intent)
    gw.fake.add_unit_file(UNIT, op.content)
    gw.fake.daemon_reload()
    if not starts:
        gw.fake.set_start_behaviour(f"/{NEW}/", "fail")
    gw.fake.stop_unit(UNIT)
    gw.fake.set_unit_state(UNIT, "active")
    config.write_text('{"meta": {"lastTouchedVersion": "2026.2.1"}}\n')  # rewritten by NEW
    result = gw.apply(spec)
    outcome = next(o for o in result.outcomes if o.action.address == unit_address("ops"))
    after = gw.plan(spec)
    assert after.runnable == () or not after.runnable, [a.address for a in after.runnable]
    assert not (op.memory / "switch" / "ops").exists()
    if starts:
        assert outcome.outcome == "applied", outcome.detail
        assert f"/{NEW}/" in gw.fake.unit_path(UNIT).read_text()
        assert after.blocked == ()
    else:
        assert outcome.outcome == "failed" and outcome.detail.startswith(f"rolled back to {OLD}: ")
        assert gw.fake.unit_path(UNIT).read_text() == before
        assert config.read_bytes() == config_before
        assert unit_action(after).blocked is not None


def test_a_tailnet_bound_gateway_cannot_be_asked_on_loopback_and_gets_a_plain_write(
    gw: GatewayHost,
) -> None:
    spec = versioned_spec()
    spec = dataclasses.replace(spec, profiles=(Profile("ops", 18809, bind="tailnet"),))
    action = unit_action(gw.plan(spec))
    assert not any(isinstance(op, GatedSwitch) for op in action.operations)


def test_the_gate_works_for_the_newest_openclaw_with_a_token(tmp_path: Path) -> None:
    """openclaw 2026.9.x refuses `gateway health --url` whose token is only in the
    environment (`gateway_credentials_required`, docs/host-facts.md §8): the gate asks without
    `--url`, so a healthy 2026.9.6 is kept, and the token never reaches argv."""
    gw = GatewayHost(tmp_path)
    gw.fake.set_node("v24.21.0")  # 2026.9.6's engines: >=24.16.0 <25 || >=26.1.0
    gw.fake.set_npm_registry({"openclaw": {"2026.2.1": "ok", "2026.9.6": "ok"}})

    def spec(version: str) -> Spec:
        base = gateway_spec(Profile("ops", 18809, auth="token"), product="openclaw")
        runtime = GatewayRuntime(
            "openclaw",
            version=version,
            install="versioned",
            start_timeout_s=2,
            health_window_s=0,
        )
        return dataclasses.replace(
            base, runtime=Runtime(node=Node(range=">=22.12"), gateway=runtime)
        )

    gw.converge(spec("2026.2.1"))
    result = gw.apply(spec("2026.9.6"))
    outcome = next(o for o in result.outcomes if o.action.address == unit_address("ops"))
    assert outcome.outcome == "applied", outcome.detail
    assert outcome.detail.startswith("ops: 2026.2.1 -> 2026.9.6, healthy")
    unit = gw.fake.unit_path("openclaw-gateway-ops.service").read_text()
    assert "/2026.9.6/" in unit
    token = (gw.home / ".openclaw-ops/gateway.env").read_text().split("=", 1)[1].strip()
    health = [c for c in gw.fake.calls() if c["argv"][1:3] == ["gateway", "health"]]
    assert health and all(token not in " ".join(c["argv"]) for c in health)


def test_a_version_just_rolled_back_is_not_switched_to_on_the_next_profile(
    tmp_path: Path,
) -> None:
    # issue 22: the second profile got the same failing switch (and its downtime) in one apply.
    def spec(version: str) -> Spec:
        two = gateway_spec(Profile("ops", 18809), Profile("personal", 18789))
        runtime = GatewayRuntime(
            "clawdbot", version=version, install="versioned", start_timeout_s=2, health_window_s=0
        )
        return dataclasses.replace(
            two, runtime=Runtime(node=Node(range=">=22.12"), gateway=runtime)
        )

    gw = GatewayHost(tmp_path)
    gw.fake.set_npm_registry({"clawdbot": {OLD: "ok", NEW: "ok"}})
    gw.converge(spec(OLD))
    gw.fake.set_start_behaviour(f"/{NEW}/", "fail", journal=["ERR_MODULE_NOT_FOUND"])
    gw.fake.clear_calls()
    result = gw.apply(spec(NEW))
    switches = [o for o in result.outcomes if o.action.address.endswith(".unit")]
    first, second = switches
    assert first.outcome == "failed" and first.detail.startswith(f"rolled back to {OLD}")
    assert second.outcome == "failed", (second.outcome, second.detail)
    assert second.detail.startswith(f"not switched: {NEW} was just rolled back on profile ")
    restarted = [
        c["argv"][-1]
        for c in gw.fake.mutating_calls()
        if c["tool"] == "systemctl" and "restart" in c["argv"]
    ]
    # the first profile: the switch's restart and the rollback's; the second: none
    assert len(restarted) == 2 and len(set(restarted)) == 1
    for unit in ("clawdbot-gateway-ops.service", "clawdbot-gateway-personal.service"):
        assert f"/{OLD}/" in gw.fake.unit_path(unit).read_text()


def test_a_release_whose_engines_node_is_not_met_never_switches(tmp_path: Path) -> None:
    """openclaw 2026.9.6 needs node >=24.16 (its package.json engines): under node 22 the
    install step refuses it before it is renamed into place, so no switch starts (zero
    downtime), the failure is remembered, and the plan says which node to install."""
    gw = GatewayHost(tmp_path)
    gw.fake.set_node("v22.12.0")
    gw.fake.set_npm_registry({"openclaw": {"2026.2.1": "ok", "2026.9.6": "ok"}})

    def spec(version: str) -> Spec:
        base = gateway_spec(Profile("ops", 18809, auth="token"), product="openclaw")
        runtime = GatewayRuntime(
            "openclaw", version=version, install="versioned", start_timeout_s=2, health_window_s=0
        )
        return dataclasses.replace(
            base, runtime=Runtime(node=Node(range=">=22.12"), gateway=runtime)
        )

    gw.converge(spec("2026.2.1"))
    gw.fake.clear_calls()
    result = gw.apply(spec("2026.9.6"))
    outcomes = {o.action.address: o for o in result.outcomes}
    install = outcomes["gateway.version[2026.9.6]"]
    assert install.outcome == "failed"
    assert "2026.9.6 needs node >=24.16.0 <25 || >=26.1.0" in install.detail
    assert "is v22.12.0" in install.detail and "npm install node@24.21.0" in install.detail
    assert outcomes[unit_address("ops")].outcome == "skipped"
    assert [c for c in gw.fake.mutating_calls() if c["tool"] == "systemctl"] == []
    assert not (gw.home / ".local/lib/openclaw/2026.9.6").exists()
    # the next (timer's) plan: the install is blocked with the fix, and the switch with it
    again = gw.plan(spec("2026.9.6"))
    step = next(a for a in again.actions if a.address == "gateway.version[2026.9.6]")
    assert step.blocked is not None and "needs node >=24.16.0" in step.blocked
    assert unit_action(again).blocked == "waits for gateway.version[2026.9.6] (blocked)"


def test_an_installed_release_whose_node_went_away_blocks_its_units_changes(
    tmp_path: Path,
) -> None:
    """The plan reads each installed release's engines.node: node 24 replaced by node 22 under
    a running 2026.9.6 blocks a change of its unit (a restart would not come back), with the
    node to pin; the running gateway is left alone."""
    gw = GatewayHost(tmp_path)
    gw.fake.set_node("v24.21.0")
    gw.fake.set_npm_registry({"openclaw": {"2026.9.6": "ok"}})
    runtime = GatewayRuntime(
        "openclaw", version="2026.9.6", install="versioned", start_timeout_s=2, health_window_s=0
    )
    base = gateway_spec(Profile("ops", 18809), product="openclaw")
    gw.converge(
        dataclasses.replace(base, runtime=Runtime(node=Node(range=">=22.12"), gateway=runtime))
    )
    gw.fake.set_node("v22.12.0")
    moved = dataclasses.replace(
        base,
        profiles=(Profile("ops", 18829),),
        runtime=Runtime(node=Node(range=">=22.12"), gateway=runtime),
    )
    unit = unit_action(gw.plan(moved))
    assert unit.blocked is not None
    assert unit.blocked.startswith("openclaw@2026.9.6 needs node >=24.16.0 <25 || >=26.1.0")
    assert "(v22.12.0, the node on user's PATH)" in unit.blocked
    # the fix: the node to pin (the reconciler installs it; docs/updates.md#node-per-release)
    assert "set runtime.node: {version: 24.16.0}" in unit.blocked


def _fill_state(gw: GatewayHost) -> Path:
    state = gw.home / ".clawdbot-ops"
    sessions = state / "agents/main/sessions"
    sessions.mkdir(parents=True, exist_ok=True)
    (sessions / "s1.jsonl").write_text('{"role": "user"}\n')
    (state / "devices").mkdir(exist_ok=True)
    (state / "devices/paired.json").write_text('{"dev1": {"publicKey": "k"}}')
    (state / "identity").mkdir(exist_ok=True)
    (state / "identity/device-auth.json").write_text("{}")
    (state / "identity/device-auth.json").chmod(0o600)
    (state / "link").symlink_to("devices/paired.json")
    return state


def test_a_rolled_back_switch_puts_the_state_directory_back_byte_identical(
    gw: GatewayHost,
) -> None:
    """A release may migrate its state on start (openclaw 2026.9 imports sessions into SQLite
    and deletes identity/device-auth.json): the switch copies the state directory with the
    gateway stopped and a rollback puts it back, the refused release's state kept aside."""
    from reconciler.shell.switch import restore_state, snapshot_state

    state = _fill_state(gw)
    before = file_tree(state)
    memory = memory_dir(gw.home)
    # the functions, on what a migrating release does between the copy and the rollback
    copied = snapshot_state(memory, "ops", state)
    assert copied["copied"] and copied["bytes"] > 0
    (state / "identity/device-auth.json").unlink()
    (state / "agents/main/sessions/s1.jsonl").unlink()
    (state / "state.sqlite").write_bytes(b"SQLite format 3\x00")
    assert snapshot_state(memory, "ops", state)["copied"] is False  # an earlier copy is kept
    restore_state(memory, "ops", state)
    assert file_tree(state) == before
    assert (memory / "rejected-state/ops/state.sqlite").exists()
    # through apply: a refused release, the state back and the copy gone with the switch
    from reconciler.shell.switch import forget_copies

    forget_copies(memory, "ops")
    gw.fake.set_start_behaviour(f"/{NEW}/", "fail")
    result = gw.apply(versioned_spec())
    outcome = next(o for o in result.outcomes if o.action.address == unit_address("ops"))
    assert outcome.outcome == "failed" and outcome.detail.startswith(f"rolled back to {OLD}")
    assert file_tree(state) == before
    assert not (memory / "switch/ops").exists()


def test_a_kept_switch_keeps_its_state_copy_until_the_next_one(gw: GatewayHost) -> None:
    state = _fill_state(gw)
    before = file_tree(state)
    result = gw.apply(versioned_spec())
    outcome = next(o for o in result.outcomes if o.action.address == unit_address("ops"))
    assert outcome.outcome == "applied", outcome.detail
    kept = memory_dir(gw.home) / "kept-state/ops"
    assert file_tree(kept) == before
    (report,) = [r.report for r in outcome.operations if r.report is not None]
    record = report.record()
    assert isinstance(record["snapshot_s"], float) and record["snapshot_s"] >= 0
    assert isinstance(record["snapshot_bytes"], int) and record["snapshot_bytes"] > 0


def test_a_version_chosen_by_hand_ignores_its_mark_but_no_other_block(tmp_path: Path) -> None:
    """`rollback` plans the unit for a version chosen by hand (`plan_switch`), not a spec
    patched to pin it: a bad-version mark on that version does not block it (the gate still
    checks it), a node below its engines does. (With the spec patched, the mark hid the
    engines block, and rollback then cleared the mark's: a switch to a release whose node is
    missing ran.)"""
    from reconciler.kinds.gateway_unit import plan_switch

    gw = GatewayHost(tmp_path)
    gw.fake.set_node("v24.21.0")
    gw.fake.set_npm_registry({"openclaw": {"2026.2.1": "ok", "2026.9.6": "ok"}})

    def spec(version: str) -> Spec:
        base = gateway_spec(Profile("ops", 18809), product="openclaw")
        runtime = GatewayRuntime(
            "openclaw", version=version, install="versioned", start_timeout_s=2, health_window_s=0
        )
        return dataclasses.replace(
            base, runtime=Runtime(node=Node(range=">=22.12"), gateway=runtime)
        )

    gw.converge(spec("2026.9.6"))
    older = spec("2026.2.1")
    gw.converge(older)  # 2026.9.6 stays installed: what a rollback goes back to
    memory = memory_dir(gw.home)
    (memory / BAD_VERSIONS).write_text(
        json.dumps(
            {"profiles": {"ops": {"version": "2026.9.6", "failed_at": "x", "reason": "by hand"}}}
        )
    )
    (ops,) = older.profiles
    chosen = plan_switch(older, ops, gw.host, gw.probe(older).facts, "2026.9.6")
    assert chosen is not None and chosen.blocked is None
    (switch,) = [op for op in chosen.operations if isinstance(op, GatedSwitch)]
    assert (switch.from_version, switch.to_version) == ("2026.2.1", "2026.9.6")
    assert "/2026.9.6/" in switch.content and "/2026.2.1/" not in switch.content
    gw.fake.set_node("v22.12.0")
    refused = plan_switch(older, ops, gw.host, gw.probe(older).facts, "2026.9.6")
    assert refused is not None and refused.blocked is not None
    assert refused.blocked.startswith("openclaw@2026.9.6 needs node >=24.16.0")
