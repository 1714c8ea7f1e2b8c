"""Runtime prerequisites as data: probed versions in, planned actions out."""

from __future__ import annotations

from dataclasses import replace

from reconciler.core.action import RunCommand
from reconciler.facts.programs import ProgramVersion, ProgramVersionProbe
from reconciler.kinds.runtime import RuntimeKind, gateway_probe, node_probe
from reconciler.spec.model import GatewayRuntime, Node, Runtime

from .helpers import facts, located, make_host, make_spec

PIN = "2026.1.24-3"


def plan(node: str | None, gateway: str | None, *, runtime: Runtime | None = None):  # type: ignore[no-untyped-def]
    spec = make_spec()
    if runtime is not None:
        spec = replace(spec, runtime=runtime)
    host = make_host()
    # Where the programs are is a discovered fact: nothing here depends on this machine's PATH.
    program = spec.runtime.gateway.command or "clawdbot"
    where = located(
        host,
        {program: "/usr/local/bin/clawdbot" if gateway else None},
        node="/usr/bin/node" if node else None,
        npm="/usr/bin/npm",
        docker="/usr/bin/docker",
    )
    found = facts(where)
    values = {
        **where,
        node_probe(host, found): ProgramVersion(
            "/usr/bin/node" if node else None, node, "" if node else "node: not installed"
        ),
        gateway_probe(spec, host, found): ProgramVersion(
            "/usr/local/bin/clawdbot" if gateway else None,
            gateway,
            "" if gateway else "clawdbot: not installed",
        ),
    }
    return RuntimeKind().plan(spec, host, facts(values))


PINNED = Runtime(Node(range=">=22.12"), GatewayRuntime("clawdbot", version=PIN))


def test_matching_versions_plan_nothing() -> None:
    assert plan("v22.12.0", PIN, runtime=PINNED).actions == ()


def test_old_node_is_blocked_and_never_installed() -> None:
    node_action, gateway_action = plan("v20.11.1", "2026.1.20", runtime=PINNED).actions
    assert node_action.address == "runtime.node" and node_action.operations == ()
    assert node_action.blocked and "does not satisfy >=22.12" in node_action.blocked
    assert gateway_action.depends_on == ("runtime.node",)


def test_a_different_gateway_pin_is_installed_with_npm_as_root_for_a_system_prefix() -> None:
    (action,) = plan("v22.12.0", "2026.1.20", runtime=PINNED).actions
    (op,) = action.operations
    assert isinstance(op, RunCommand)
    assert op.command.argv[1:] == ("install", "-g", f"clawdbot@{PIN}")
    assert op.command.needs_root and action.kind == "update"


def test_an_explicit_gateway_command_is_checked_not_replaced() -> None:
    runtime = Runtime(
        Node(), GatewayRuntime("clawdbot", version=PIN, command="/opt/gw/bin/clawdbot")
    )
    (action,) = plan("v22.12.0", "2026.1.20", runtime=runtime).actions
    assert action.kind == "verify" and action.operations == ()
    assert action.blocked and "does not install" in action.blocked


def test_no_node_blocks_the_gateway_install_even_without_a_node_range() -> None:
    runtime = Runtime(Node(), GatewayRuntime("clawdbot", version=PIN))
    (action,) = plan(None, None, runtime=runtime).actions
    assert action.blocked and "npm and the gateway need node" in action.blocked
    assert isinstance(ProgramVersionProbe("node", None).read(make_host()), ProgramVersion)
