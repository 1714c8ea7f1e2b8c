"""Tailscale Serve entries and the funnel guard: tailnet-only HTTPS in front of the gateways.

Wants: `tailscale.serve` entries (HTTPS port -> a profile's loopback port or an explicit
loopback URL), `tailscale.prune`, `tailscale.funnel` (deny|allow): the tailscale section it owns
(reconciler/spec/sections/tailscale/).
Probes: one `tailscale serve status --json`, one `tailscale status --json` (BackendState, DNSName,
CapMap "https"), `tailscale debug prefs` (operator, to know whether we need root).
Compares: node-level `Web` mounts of this node by HTTPS port, targets normalised.
Fixes: `tailscale serve --bg --yes --https=P <target>`; a change removes then adds; removal only
of a mount the probe saw. `Foreground` and `Services` entries are never touched. With
`funnel: deny`, public exposure is removed and shouted about: the port is served again
tailnet-only, or, with no proxy to keep, `tailscale funnel --https=P off` (docs/host-facts.md §2).
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
from reconciler.facts.tailscale import (
    ServeConfig,
    ServeStatusProbe,
    TailscalePrefsProbe,
    TailscaleStatus,
    TailscaleStatusProbe,
    WebMount,
    normalize_target,
)
from reconciler.frozen import frozen
from reconciler.gateway.addresses import OPERATOR
from reconciler.spec.model import Spec
from reconciler.spec.sections.tailscale.model import ServeEntry, Tailscale


@frozen
class DesiredServe:
    port: int
    target: str  # normalised, as tailscale stores it
    funnel: bool
    source: str  # what the spec said, for reasons ("profile personal")


def desired_serves(spec: Spec) -> tuple[DesiredServe, ...]:
    """The serve entries the spec wants, with profile names resolved to loopback URLs."""
    if spec.tailscale is None:
        return ()
    return tuple(sorted((_resolve(spec, e) for e in spec.tailscale.serve), key=lambda d: d.port))


def _resolve(spec: Spec, entry: ServeEntry) -> DesiredServe:
    if entry.profile is not None:
        port = spec.profile(entry.profile).port
        return DesiredServe(
            entry.https, f"http://127.0.0.1:{port}", entry.funnel, f"profile {entry.profile}"
        )
    assert entry.target is not None  # the schema requires one of profile/target
    return DesiredServe(entry.https, normalize_target(entry.target), entry.funnel, entry.target)


def serve_address(port: int) -> str:
    return f"tailscale.serve[{port}]"


def funnel_address(port: int) -> str:
    return f"tailscale.funnel[{port}]"


@register(90)
class ServeKind(Kind):
    name = "tailscale.serve"

    def desired(self, spec: Spec, home: Path) -> Mapping[str, Any]:
        """The funnel policy, pruning, and every serve entry resolved to its target."""
        if spec.tailscale is None:
            return {}
        return {
            "tailscale": {
                "funnel": spec.tailscale.funnel,
                "prune": spec.tailscale.prune,
                "serve": {
                    str(entry.port): {
                        "target": entry.target,
                        "funnel": entry.funnel,
                        "from": entry.source,
                    }
                    for entry in desired_serves(spec)
                },
            }
        }

    def probes(
        self, spec: Spec, host: HostContext, found: Facts = NO_FACTS
    ) -> Iterable[Probe[Any]]:
        if spec.tailscale is None:
            return
        yield TailscaleStatusProbe()
        yield ServeStatusProbe()
        yield TailscalePrefsProbe()

    def plan(self, spec: Spec, host: HostContext, facts: Facts) -> KindPlan:
        if spec.tailscale is None:
            return KindPlan()
        node = _Node.read(spec, spec.tailscale, host, facts)
        wanted = desired_serves(spec)
        if node.blocker and node.config.reachability != "ok":
            # We cannot see what is there: every wanted entry is blocked, nothing is removed.
            return KindPlan(actions=tuple(node.blind(entry) for entry in wanted))
        wanted_ports = {e.port for e in wanted}
        actions = [*node.funnel_guard(wanted_ports)]
        findings = [*node.foreground_funnels()]
        actions += [a for a in (node.serve(entry) for entry in wanted) if a is not None]
        for mount in node.config.web:
            if mount.host == node.me and mount.port in wanted_ports:
                continue
            part = node.unlisted(mount)
            if isinstance(part, Action):
                actions.append(part)
            else:
                findings.append(part)
        findings.extend(_untouchables(node.config))
        return KindPlan(actions=tuple(actions), findings=tuple(findings))


@frozen
class _Node:
    """This node's Tailscale state as the serve plan needs it, and how to change its serves."""

    tailscale: Tailscale
    status: TailscaleStatus
    config: ServeConfig
    blocker: str | None
    needs_root: bool
    after_operator: tuple[str, ...]
    # An admin account acting for the spec's user (sudo -n -u) writes serves as that user when
    # the user is the operator: no root rule needed, the same plan as the user's own.
    as_operator: bool = False

    @classmethod
    def read(cls, spec: Spec, tailscale: Tailscale, host: HostContext, facts: Facts) -> _Node:
        status = facts.get(TailscaleStatusProbe())
        config = facts.get(ServeStatusProbe())
        prefs = facts.get(TailscalePrefsProbe())
        blocker = status.serve_blocker() or (config.detail if config.reachability != "ok" else None)
        # Who may write serve config: root, or the operator (the one the spec sets, or the current).
        operator_after = tailscale.operator or prefs.operator
        sets_operator = tailscale.operator is not None and prefs.operator != tailscale.operator
        as_operator = not host.is_root and host.sudo_to_user and operator_after == host.user_name
        return cls(
            tailscale,
            status,
            config,
            blocker,
            needs_root=not host.is_root and operator_after != host.invoker.name and not as_operator,
            after_operator=(OPERATOR,) if sets_operator else (),
            as_operator=as_operator,
        )

    @property
    def me(self) -> str:
        return self.status.dns_name or ""

    @property
    def funneled(self) -> set[str]:
        return set(self.config.funnel)

    def command(self, *args: str) -> RunCommand:
        return RunCommand(
            Command(
                ("tailscale", *args),
                scope="user" if self.as_operator else "system",
                needs_root=self.needs_root,
                mutating=True,
                timeout_s=60,
            )
        )

    def add(self, entry: DesiredServe) -> RunCommand:
        verb = "funnel" if entry.funnel else "serve"
        return self.command(verb, "--bg", "--yes", f"--https={entry.port}", entry.target)

    def blind(self, entry: DesiredServe) -> Action:
        """A wanted entry on a node whose serve config cannot be read: blocked."""
        return Action(
            serve_address(entry.port),
            "create",
            f"serve {entry.source} on https:{entry.port}",
            (self.add(entry),),
            changes=attribute_changes(_record(entry.target, entry.funnel), {}),
            depends_on=self.after_operator,
            blocked=self.blocker,
        )

    def funnel_guard(self, wanted_ports: set[int]) -> Iterable[Action]:
        """With funnel: deny, public exposure of ports the spec does not serve is removed.

        `funnel --https=P off` removes the port's whole serve entry (tailscale serve_v2.go),
        while serving a funneled port again drops only the funnel: prefer that when we can.
        The spec's own ports are handled by `serve`.
        """
        if self.tailscale.funnel != "deny":
            return
        for hostport in self.config.funnel:
            host_name, _, port_text = hostport.rpartition(":")
            port = int(port_text)
            if host_name == self.me and (port in wanted_ports or self.tailscale.prune):
                continue  # its own action removes the exposure
            mount = self.config.mount(host_name, port)
            proxy = mount.root_proxy() if mount and host_name == self.me else None
            if proxy:
                ops = (self.command("serve", "--bg", "--yes", f"--https={port}", proxy),)
                how = "serving it again tailnet-only drops the funnel"
            else:
                ops = (self.command("funnel", f"--https={port}", "off"),)
                how = "turning the funnel off also removes this port's serve entry"
            yield Action(
                funnel_address(port),
                "delete",
                f"PUBLIC EXPOSURE: {hostport} is open to the internet (Funnel) and "
                f"the spec says funnel: deny; {how}",
                ops,
                changes=attribute_changes({"funnel": False}, {"funnel": True}),
                depends_on=self.after_operator,
                blocked=self.status.serve_blocker(),
                warning=f"{hostport} is reachable from the public internet",
            )

    def foreground_funnels(self) -> Iterable[Finding]:
        for hostport in self.config.foreground_funnel:
            yield Finding(
                f"tailscale.funnel[{hostport}]",
                f"PUBLIC EXPOSURE by a foreground `tailscale funnel` session on {hostport}: "
                "not ours to stop (end that session)",
                "danger",
            )

    def serve(self, entry: DesiredServe) -> Action | None:
        """The action that makes https:<port> serve `entry`, or None when it already does."""
        mount = self.config.mount(self.me, entry.port)
        actual_target = mount.root_proxy() if mount else None
        actual_funnel = f"{self.me}:{entry.port}" in self.funneled
        extra = sorted(set(mount.handlers) - {"/"}) if mount else []
        if mount and not extra and (actual_target, actual_funnel) == (entry.target, entry.funnel):
            return None  # in sync
        exposed = actual_funnel and not entry.funnel
        warning = None
        if exposed:
            warning = f"{self.me}:{entry.port} is reachable from the public internet"
        elif entry.funnel:
            warning = "public exposure requested by the spec"
        reason = f"serve {entry.source} on https:{entry.port} (tailnet only)"
        if entry.funnel:
            reason = f"serve {entry.source} on https:{entry.port} PUBLICLY (funnel: allow)"
        if mount is None:
            return self._create(entry, reason, warning)
        if not extra and actual_target == entry.target:
            return self._refunnel(entry, reason, warning, exposed, actual_funnel)
        return self._replace(entry, mount, reason, warning, extra, actual_funnel)

    def _create(self, entry: DesiredServe, reason: str, warning: str | None) -> Action:
        conflict = self.config.tcp.get(entry.port)
        tcp_blocker = (
            f"https:{entry.port} is taken by a TCP forward the spec does not own"
            if conflict and not conflict.get("HTTPS")
            else None
        )
        return Action(
            serve_address(entry.port),
            "create",
            reason,
            (self.add(entry),),
            changes=attribute_changes(_record(entry.target, entry.funnel), {}),
            depends_on=self.after_operator,
            blocked=self.blocker or tcp_blocker,
            warning=warning,
        )

    def _refunnel(
        self,
        entry: DesiredServe,
        reason: str,
        warning: str | None,
        exposed: bool,
        actual_funnel: bool,
    ) -> Action:
        """Only the funnel flag differs: serving again drops a funnel, `funnel` adds one."""
        return Action(
            funnel_address(entry.port) if exposed else serve_address(entry.port),
            "delete" if exposed else "update",
            f"PUBLIC EXPOSURE: {self.me}:{entry.port} is open to the internet (Funnel) "
            "and the spec does not want it public"
            if exposed
            else reason,
            (self.add(entry),),
            changes=attribute_changes({"funnel": entry.funnel}, {"funnel": actual_funnel}),
            depends_on=self.after_operator,
            blocked=self.blocker,
            warning=warning,
        )

    def _replace(
        self,
        entry: DesiredServe,
        mount: WebMount,
        reason: str,
        warning: str | None,
        extra: list[str],
        actual_funnel: bool,
    ) -> Action:
        """Another target (or paths the spec does not own) on the port: remove, then add."""
        extra_blocker = None
        if extra and not self.tailscale.prune:
            extra_blocker = (
                f"https:{entry.port} also serves {', '.join(extra)}, which the spec does not "
                "own; remove those paths by hand or set tailscale.prune: true"
            )
        actual_record = _record(mount.root_proxy(), actual_funnel)
        return Action(
            serve_address(entry.port),
            "update",
            reason,
            (self.command("serve", f"--https={entry.port}", "off"), self.add(entry)),
            changes=attribute_changes(
                _record(entry.target, entry.funnel) | {"paths": ["/"]},
                actual_record | {"paths": sorted(mount.handlers)},
            ),
            depends_on=self.after_operator,
            blocked=self.blocker or extra_blocker,
            warning=warning,
        )

    def unlisted(self, mount: WebMount) -> Action | Finding:
        """A serve the spec does not list: removed with prune (this node's), else reported."""
        where = f"{mount.host}:{mount.port}"
        public = where in self.funneled
        if mount.host == self.me and self.tailscale.prune:
            return Action(
                serve_address(mount.port),
                "delete",
                f"https:{mount.port} is not in the spec and tailscale.prune is true",
                (self.command("serve", f"--https={mount.port}", "off"),),
                changes=attribute_changes({}, _mount_record(mount)),
                depends_on=self.after_operator,
                blocked=self.status.serve_blocker(),
                warning=f"{where} is reachable from the public internet" if public else None,
            )
        return Finding(
            serve_address(mount.port) if mount.host == self.me else f"tailscale.serve[{where}]",
            f"unmanaged serve on {where} -> {_describe(mount)}"
            + (" PUBLIC via Funnel" if public else "")
            + " (left alone; set tailscale.prune: true to remove node-level entries "
            "the spec does not list)",
            "warning" if public else "info",
        )


def _record(target: str | None, funnel: bool) -> dict[str, Any]:
    return {"target": target, "funnel": funnel}


def _mount_record(mount: WebMount) -> dict[str, Any]:
    return {
        path: h.get("Proxy") or h.get("Path") or h.get("Text")
        for path, h in sorted(mount.handlers.items())
    }


def _describe(mount: WebMount) -> str:
    return ", ".join(f"{p} {v}" for p, v in _mount_record(mount).items()) or "(no handlers)"


def _untouchables(config: ServeConfig) -> Iterable[Finding]:
    for session in config.foreground_sessions:
        yield Finding(
            f"tailscale.serve.foreground[{session}]",
            "a foreground serve session is running (someone's terminal): never touched",
        )
    for service in config.services:
        yield Finding(
            f"tailscale.serve.services[{service}]",
            "a Tailscale Service serve entry: not a node-level serve, never touched",
        )
