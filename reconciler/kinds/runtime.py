"""Runtime prerequisites: the node on PATH (checked), the gateway package (pinned).

Wants: `runtime.node`'s range form (an npm-style range; a pinned node is installed by
kinds/node_install.py), `runtime.gateway.{package, version, command}`
(`runtime.docker` is the docker kind's, kinds/docker.py).
Probes: `node --version`, `<gateway> --version`, `npm --version`'s path.
Fixes: a differing gateway pin plans `npm install -g <package>@<version>` (as the user when the
gateway lives under the user's home, else as root), unless `runtime.gateway.install` is
`versioned`: then the gateway_install kind installs each version side by side and a global
install is left alone (reported there), never planned here. A node on PATH outside the range
is a blocked step with the reason: the reconciler installs only a pinned node, side by side.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from reconciler.core.action import Action, Finding, KindPlan, RunCommand
from reconciler.core.command import Command
from reconciler.core.diff import attribute_changes
from reconciler.core.host import HostContext
from reconciler.core.kind import NO_FACTS, Kind, register
from reconciler.core.probe import Facts, Probe
from reconciler.facts.codec import Wanted, records
from reconciler.facts.programs import ProgramVersion, ProgramVersionProbe
from reconciler.gateway.addresses import GATEWAY, NODE, service_address
from reconciler.gateway.versions import versioned
from reconciler.kinds._programs import gateway_program, location_probe, version_probe
from reconciler.semver import satisfies
from reconciler.spec.model import Spec
from reconciler.spec.naming import PRODUCTS, product_names

__all__ = ["GATEWAY", "NODE", "RuntimeKind"]


def gateway_probe(spec: Spec, host: HostContext, found: Facts) -> ProgramVersionProbe:
    """`<gateway> --version`, at the path discovered for the spec's gateway command."""
    return version_probe(gateway_program(spec), host, found)


def node_probe(host: HostContext, found: Facts) -> ProgramVersionProbe:
    return version_probe("node", host, found)


@records
def _programs(spec: Spec, host: HostContext) -> Wanted:
    """Where the programs this kind looks for are, and both products' gateway versions
    (whatever this spec asks: a later spec may switch product)."""
    names = ["node", "npm", *(p.command for p in PRODUCTS.values())]
    if spec.runtime.gateway.command:
        names.append(spec.runtime.gateway.command)
    return Wanted(
        probes=tuple(ProgramVersionProbe.find(p.command, host) for p in PRODUCTS.values()),
        programs=tuple(dict.fromkeys(names)),
    )


@register(10)
class RuntimeKind(Kind):
    name = "runtime"

    def desired(self, spec: Spec, home: Path) -> Mapping[str, Any]:
        """The gateway pin and the command it runs as (runtime.node: kinds/node_install.py)."""
        gateway = spec.runtime.gateway
        return {
            "runtime": {
                "gateway": {
                    "package": gateway.package,
                    "version": gateway.version,
                    "command": gateway.command or product_names(spec.product).command,
                },
            }
        }

    def discover(self, spec: Spec, host: HostContext) -> Iterable[Probe[Any]]:
        for program in ("node", gateway_program(spec), "npm"):
            yield location_probe(program, host)

    def probes(
        self, spec: Spec, host: HostContext, found: Facts = NO_FACTS
    ) -> Iterable[Probe[Any]]:
        # Always: npm and the gateway need node even when the spec does not pin its range.
        yield node_probe(host, found)
        yield gateway_probe(spec, host, found)

    def plan(self, spec: Spec, host: HostContext, facts: Facts) -> KindPlan:
        actions: list[Action] = []
        findings: list[Finding] = []
        node = facts.get(node_probe(host, facts))
        node_blocked = node.version is None
        wanted = spec.runtime.node.range
        if wanted is not None:
            problem = _node_problem(node.version, node.detail, wanted)
            if problem:
                node_blocked = True
                actions.append(
                    Action(
                        NODE,
                        "verify",
                        f"the gateway needs node {wanted}",
                        changes=attribute_changes({"node": wanted}, {"node": node.version}),
                        # The range form: checked, never installed (a pin installs one).
                        blocked=f"{problem} (we never install node: install it, then re-run)",
                    )
                )
        actions.extend(self._gateway(spec, host, facts, node_blocked, node.detail))
        return KindPlan(actions=tuple(actions), findings=tuple(findings))

    def _gateway(
        self, spec: Spec, host: HostContext, facts: Facts, node_blocked: bool, node_detail: str
    ) -> Iterable[Action]:
        pin = spec.runtime.gateway
        if versioned(spec):
            return  # kinds/gateway_install.py installs the versions; nothing global is planned
        gateway = facts.get(gateway_probe(spec, host, facts))
        if pin.version is None or pin.command is not None:
            yield from _checked_gateway(spec, gateway)
            return
        if gateway.version == pin.version:
            return
        npm = facts.get(location_probe("npm", host)).path
        under_home = (
            host.user is not None
            and gateway.path is not None
            and gateway.path.startswith(str(host.user.home) + "/")
        )
        command = Command(
            (npm or "npm", "install", "-g", f"{pin.package}@{pin.version}"),
            scope="user" if under_home else "system",
            needs_root=not under_home,
            mutating=True,
            timeout_s=900,
        )
        yield Action(
            GATEWAY,
            "create" if gateway.path is None else "update",
            f"the spec pins {pin.package}@{pin.version}",
            (RunCommand(command),),
            changes=attribute_changes({"version": pin.version}, {"version": gateway.version}),
            depends_on=(NODE,) if node_blocked and spec.runtime.node.range else (),
            # A new gateway package restarts every profile's running gateway.
            triggers=tuple(service_address(p.name) for p in spec.profiles),
            blocked=(
                "npm: not installed (it comes with node)"
                if not npm
                else f"{node_detail or 'node: not installed'} (npm and the gateway need node)"
                if node_blocked and not spec.runtime.node.range
                else None
            ),
        )


def _checked_gateway(spec: Spec, gateway: ProgramVersion) -> Iterable[Action]:
    """No pin, or the user's own command: the gateway is checked, never installed."""
    pin = spec.runtime.gateway
    names = product_names(spec.product)
    if gateway.path is None:
        yield Action(
            GATEWAY,
            "verify",
            f"every profile runs the {names.command} gateway",
            blocked=(
                f"{gateway.detail}; install it (npm install -g {pin.package}) or pin "
                "runtime.gateway.version to let the reconciler install it"
            ),
        )
    elif pin.version is not None and gateway.version != pin.version:
        # An explicit command is the user's own install: we check it, never replace it.
        yield Action(
            GATEWAY,
            "verify",
            f"the spec pins {pin.package}@{pin.version} at {pin.command}",
            changes=attribute_changes({"version": pin.version}, {"version": gateway.version}),
            blocked=(
                f"{pin.command} reports {gateway.version or gateway.detail}; with "
                "runtime.gateway.command set the reconciler does not install the gateway: "
                "update it there, or drop `command` to let npm install the pin"
            ),
        )


def _node_problem(version: str | None, detail: str, wanted: str) -> str | None:
    if version is None:
        return detail or "node: not installed"
    try:
        ok = satisfies(version, wanted)
    except ValueError as exc:
        return f"cannot compare node {version} with {wanted!r}: {exc}"
    return None if ok else f"node {version} does not satisfy {wanted}"
