"""Tailscale Serve entries and the funnel guard: tailnet-only HTTPS in front of the gateways.

Wants: `tailscale.serve` entries (HTTPS port -> a profile's loopback port or an explicit
loopback URL), `tailscale.prune`, `tailscale.funnel` (deny|allow).
Probes: one `tailscale serve status --json`, one `tailscale status --json` (BackendState, DNSName,
CapMap "https"), `tailscale debug prefs` (operator, to know whether we need root).
Compares: node-level `Web` mounts of this node by HTTPS port, targets normalised.
Fixes: `tailscale serve --bg --yes --https=P <target>`; a change removes then adds; removal only
of a mount the probe saw. `Foreground` and `Services` entries are never touched. With
`funnel: deny`, public exposure is removed and shouted about: the port is served again
tailnet-only, or, with no proxy to keep, `tailscale funnel --https=P off` (docs/host-facts.md §2).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from reconciler.core.action import Action, Finding, KindPlan, RunCommand
from reconciler.core.command import Command
from reconciler.core.diff import attribute_changes
from reconciler.core.host import HostContext
from reconciler.core.probe import Facts, Probe
from reconciler.facts.tailscale import (
    ServeConfig,
    ServeStatusProbe,
    TailscalePrefsProbe,
    TailscaleStatusProbe,
    WebMount,
    normalize_target,
)
from reconciler.kinds import operator
from reconciler.spec.model import ServeEntry, Spec


@dataclass(frozen=True)
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


class ServeKind:
    name = "tailscale.serve"

    def probes(self, spec: Spec, host: HostContext) -> Iterable[Probe[Any]]:
        if spec.tailscale is None:
            return
        yield TailscaleStatusProbe()
        yield ServeStatusProbe()
        yield TailscalePrefsProbe()

    def plan(self, spec: Spec, host: HostContext, facts: Facts) -> KindPlan:
        if spec.tailscale is None:
            return KindPlan()
        status = facts.get(TailscaleStatusProbe())
        config = facts.get(ServeStatusProbe())
        prefs = facts.get(TailscalePrefsProbe())
        wanted = desired_serves(spec)
        blocker = status.serve_blocker() or (config.detail if config.reachability != "ok" else None)

        # Who may write serve config: root, or the operator (the one the spec sets, or the current).
        operator_after = spec.tailscale.operator or prefs.operator
        needs_root = not host.is_root and operator_after != host.invoker.name
        sets_operator = (
            spec.tailscale.operator is not None and prefs.operator != spec.tailscale.operator
        )
        after_operator = (operator.ADDRESS,) if sets_operator else ()

        def command(*args: str) -> RunCommand:
            return RunCommand(
                Command(("tailscale", *args), needs_root=needs_root, mutating=True, timeout_s=60)
            )

        def add(entry: DesiredServe) -> RunCommand:
            verb = "funnel" if entry.funnel else "serve"
            return command(verb, "--bg", "--yes", f"--https={entry.port}", entry.target)

        actions: list[Action] = []
        findings: list[Finding] = []
        if blocker and config.reachability != "ok":
            # We cannot see what is there: every wanted entry is blocked, nothing is removed.
            for entry in wanted:
                actions.append(
                    Action(
                        serve_address(entry.port),
                        "create",
                        f"serve {entry.source} on https:{entry.port}",
                        (add(entry),),
                        changes=attribute_changes(_record(entry.target, entry.funnel), {}),
                        depends_on=after_operator,
                        blocked=blocker,
                    )
                )
            return KindPlan(actions=tuple(actions))

        me = status.dns_name or ""
        funneled = set(config.funnel)
        deny = spec.tailscale.funnel == "deny"

        wanted_ports = {e.port for e in wanted}

        # The funnel guard, for ports the spec does not serve (its own ports are handled below).
        # `funnel --https=P off` removes the port's whole serve entry (tailscale serve_v2.go),
        # while serving a funneled port again drops only the funnel: prefer that when we can.
        if deny:
            for hostport in config.funnel:
                host_name, _, port_text = hostport.rpartition(":")
                port = int(port_text)
                if host_name == me and (port in wanted_ports or spec.tailscale.prune):
                    continue  # its own action below removes the exposure
                mount = config.mount(host_name, port)
                proxy = mount.root_proxy() if mount and host_name == me else None
                if proxy:
                    ops = (command("serve", "--bg", "--yes", f"--https={port}", proxy),)
                    how = "serving it again tailnet-only drops the funnel"
                else:
                    ops = (command("funnel", f"--https={port}", "off"),)
                    how = "turning the funnel off also removes this port's serve entry"
                actions.append(
                    Action(
                        funnel_address(port),
                        "delete",
                        f"PUBLIC EXPOSURE: {hostport} is open to the internet (Funnel) and "
                        f"the spec says funnel: deny; {how}",
                        ops,
                        changes=attribute_changes({"funnel": False}, {"funnel": True}),
                        depends_on=after_operator,
                        blocked=status.serve_blocker(),
                        warning=f"{hostport} is reachable from the public internet",
                    )
                )
        for hostport in config.foreground_funnel:
            findings.append(
                Finding(
                    f"tailscale.funnel[{hostport}]",
                    f"PUBLIC EXPOSURE by a foreground `tailscale funnel` session on {hostport}: "
                    "not ours to stop (end that session)",
                    "danger",
                )
            )

        for entry in wanted:
            mount = config.mount(me, entry.port)
            actual_target = mount.root_proxy() if mount else None
            actual_funnel = f"{me}:{entry.port}" in funneled
            desired_record = _record(entry.target, entry.funnel)
            actual_record = _record(actual_target, actual_funnel) if mount else {}
            extra = sorted(set(mount.handlers) - {"/"}) if mount else []
            if (
                mount
                and not extra
                and (actual_target, actual_funnel) == (entry.target, entry.funnel)
            ):
                continue  # in sync
            exposed = actual_funnel and not entry.funnel
            warning = None
            if exposed:
                warning = f"{me}:{entry.port} is reachable from the public internet"
            elif entry.funnel:
                warning = "public exposure requested by the spec"
            reason = f"serve {entry.source} on https:{entry.port} (tailnet only)"
            if entry.funnel:
                reason = f"serve {entry.source} on https:{entry.port} PUBLICLY (funnel: allow)"
            if mount is None:
                conflict = config.tcp.get(entry.port)
                tcp_blocker = (
                    f"https:{entry.port} is taken by a TCP forward the spec does not own"
                    if conflict and not conflict.get("HTTPS")
                    else None
                )
                actions.append(
                    Action(
                        serve_address(entry.port),
                        "create",
                        reason,
                        (add(entry),),
                        changes=attribute_changes(desired_record, actual_record),
                        depends_on=after_operator,
                        blocked=blocker or tcp_blocker,
                        warning=warning,
                    )
                )
                continue
            if not extra and actual_target == entry.target:
                # Only the funnel flag differs: serving again drops a funnel, `funnel` adds one.
                actions.append(
                    Action(
                        funnel_address(entry.port) if exposed else serve_address(entry.port),
                        "delete" if exposed else "update",
                        f"PUBLIC EXPOSURE: {me}:{entry.port} is open to the internet (Funnel) "
                        "and the spec does not want it public"
                        if exposed
                        else reason,
                        (add(entry),),
                        changes=attribute_changes(
                            {"funnel": entry.funnel}, {"funnel": actual_funnel}
                        ),
                        depends_on=after_operator,
                        blocked=blocker,
                        warning=warning,
                    )
                )
                continue
            extra_blocker = None
            if extra and not spec.tailscale.prune:
                extra_blocker = (
                    f"https:{entry.port} also serves {', '.join(extra)}, which the spec does not "
                    "own; remove those paths by hand or set tailscale.prune: true"
                )
            actions.append(
                Action(
                    serve_address(entry.port),
                    "update",
                    reason,
                    (command("serve", f"--https={entry.port}", "off"), add(entry)),
                    changes=attribute_changes(
                        desired_record | {"paths": ["/"]},
                        actual_record | {"paths": sorted(mount.handlers)},
                    ),
                    depends_on=after_operator,
                    blocked=blocker or extra_blocker,
                    warning=warning,
                )
            )

        for mount in config.web:
            if mount.host == me and mount.port in wanted_ports:
                continue
            where = f"{mount.host}:{mount.port}"
            if mount.host == me and spec.tailscale.prune:
                actions.append(
                    Action(
                        serve_address(mount.port),
                        "delete",
                        f"https:{mount.port} is not in the spec and tailscale.prune is true",
                        (command("serve", f"--https={mount.port}", "off"),),
                        changes=attribute_changes({}, _mount_record(mount)),
                        depends_on=after_operator,
                        blocked=status.serve_blocker(),
                        warning=f"{where} is reachable from the public internet"
                        if where in funneled
                        else None,
                    )
                )
            else:
                findings.append(
                    Finding(
                        serve_address(mount.port)
                        if mount.host == me
                        else f"tailscale.serve[{where}]",
                        f"unmanaged serve on {where} -> {_describe(mount)}"
                        + (" PUBLIC via Funnel" if where in funneled else "")
                        + " (left alone; set tailscale.prune: true to remove node-level entries "
                        "the spec does not list)",
                        "warning" if where in funneled else "info",
                    )
                )
        findings.extend(_untouchables(config))
        return KindPlan(actions=tuple(actions), findings=tuple(findings))


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
