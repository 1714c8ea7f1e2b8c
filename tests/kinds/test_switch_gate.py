"""The unit kind plans a version change of a running gateway as a health-gated switch
(kinds/_switch.py): versions in the reason, rollback named, bad versions blocked, interrupted
switches checked again; apply reports the downtime."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from fakehost import gateway_unit_text

from reconciler.core.action import Action, GatedSwitch, WriteFile
from reconciler.core.plan import Plan
from reconciler.facts.switches import BAD_VERSIONS, memory_dir
from reconciler.gateway.addresses import unit_address
from reconciler.kinds._switch import exec_program
from reconciler.render.human import render_plan
from reconciler.shell.apply import apply_plan
from reconciler.spec.model import GatewayRuntime, Profile, Runtime, Spec
from reconciler.unattended.runs import outcome_of

from .gateway_host import GatewayHost, gateway_spec

OLD, NEW = "2026.1.24-3", "2026.2.1"
UNIT = "clawdbot-gateway-ops.service"


def versioned_spec(version: str = NEW, **gateway: object) -> Spec:
    spec = gateway_spec(Profile("ops", 18809))
    runtime = GatewayRuntime(
        "clawdbot", version=version, start_timeout_s=2, health_window_s=0, **gateway
    )  # type: ignore[arg-type]
    return dataclasses.replace(spec, runtime=Runtime(node=">=22.12", gateway=runtime))


def old_unit(gw: GatewayHost) -> str:
    """The unit of OLD, installed side by side: the fake node runs its entry point."""
    prefix = gw.home / ".local/lib/clawdbot" / OLD / "node_modules"
    node = str(gw.fake.bin_dir / "node")
    return gateway_unit_text(
        gw.home, profile="ops", port=18809, prefix=prefix, token=None, node=node
    )


@pytest.fixture
def gw(tmp_path: Path) -> GatewayHost:
    gw = GatewayHost(tmp_path)
    entry = gw.home / ".local/lib/clawdbot" / OLD / "node_modules/clawdbot/dist/entry.js"
    entry.parent.mkdir(parents=True)
    entry.write_text("#!/usr/bin/env node\n")
    gw.fake.add_unit_file(UNIT, old_unit(gw))
    gw.fake.daemon_reload()
    gw.fake.set_unit_state(UNIT, "active")
    return gw


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
    health = ("gateway", "health", "--json", "--url", "ws://127.0.0.1:18809")
    assert op.check.argv[-5:] == op.rollback_check.argv[-5:] == health
    # The rollback is checked with the old version's own CLI, as its unit ran it.
    assert op.rollback_check.argv[4:-5] == exec_program(old_unit(gw))
    assert op.check.argv[4:-5] == exec_program(op.content)
    assert op.memory == memory_dir(gw.home)
    text = render_plan(plan, lambda c: c.display(), color=False)
    assert f"{OLD} -> {NEW}" in text and f"roll back to {OLD}" in text
    # The service waits for the switch and does not restart the gateway a second time.
    service = next((a for a in plan.actions if a.address == "profile[ops].service"), None)
    assert service is None or not any("restart" in str(op) for op in service.operations)
    assert service is None or unit_address("ops") in service.depends_on
    # The config is written before the switch keeps its copy.
    assert "profile[ops].config" in action.depends_on


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


def test_apply_reports_the_downtime_and_the_run_record_keeps_it(gw: GatewayHost) -> None:
    plan = gw.plan(versioned_spec())
    only = dataclasses.replace(plan, actions=(unit_action(plan),))
    result = apply_plan(only, gw.runner)
    (outcome,) = result.outcomes
    assert outcome.outcome == "applied", outcome.detail
    assert outcome.detail.startswith(f"ops: {OLD} -> {NEW}, healthy (downtime ")
    (record,) = outcome_of(only, result, after=only).switches
    assert record["profile"] == "ops" and record["outcome"] == "switched"
    assert isinstance(record["downtime_s"], float) and record["downtime_s"] >= 0


def test_apply_of_a_failing_version_rolls_back_and_the_next_plan_blocks_it(
    gw: GatewayHost,
) -> None:
    spec = versioned_spec()
    plan = gw.plan(spec)
    op = switch_of(unit_action(plan))
    new_program = exec_program(op.content)
    assert new_program is not None
    gw.fake.set_start_behaviour(" ".join(new_program), "fail", journal=["ERR_MODULE_NOT_FOUND"])
    only = dataclasses.replace(plan, actions=(unit_action(plan),))
    result = apply_plan(only, gw.runner)
    (outcome,) = result.outcomes
    assert outcome.outcome == "failed"
    assert outcome.detail.startswith(f"FAILED (rolled back to {OLD}: its process ended")
    assert "ERR_MODULE_NOT_FOUND" in outcome.detail
    assert outcome_of(only, result, after=only).result == "failed"
    again = unit_action(gw.plan(spec))
    assert again.blocked is not None and again.blocked.startswith(
        f"{NEW} failed its health check at "
    )
    assert gw.fake.unit_path(UNIT).read_text() == old_unit(gw)
