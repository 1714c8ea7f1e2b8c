"""Building blocks for pure plan tests: specs and facts made in code, no host needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.core.host import Account, HostContext
from reconciler.core.kind import ResourceKind
from reconciler.core.plan import Plan, build_plan
from reconciler.core.probe import Facts, Probe
from reconciler.facts.programs import ProgramLocation, ProgramLocationProbe
from reconciler.facts.systemd import SystemdProbe, SystemdState
from reconciler.spec.model import (
    GatewayRuntime,
    Host,
    Node,
    Profile,
    Runtime,
    ServeEntry,
    Spec,
    Tailscale,
)

USER = Account("user", 1000, 1000, Path("/home/user"))
ROOT = Account("root", 0, 0, Path("/root"))


def make_spec(
    *,
    serve: tuple[ServeEntry, ...] = (),
    operator: str | None = "user",
    funnel: str = "deny",
    prune: bool = False,
    tailscale: bool = True,
    linger: bool | None = True,
    profiles: tuple[Profile, ...] = (Profile("ops", 18809), Profile("personal", 18789)),
) -> Spec:
    return Spec(
        host=Host("vm102", "user"),
        runtime=Runtime(node=Node(range=">=22.12"), gateway=GatewayRuntime("clawdbot")),
        profiles=profiles,
        linger=linger,
        tailscale=Tailscale(operator=operator, funnel=funnel, serve=serve, prune=prune)  # type: ignore[arg-type]
        if tailscale
        else None,
    )


def make_host(invoker: Account = USER, user: Account | None = USER) -> HostContext:
    return HostContext(hostname="vm102", invoker=invoker, user=user, user_name="user")


SYSTEMD = SystemdState(True, "systemd")


def planned(kind: ResourceKind, spec: Spec, host: HostContext, found: Facts) -> Plan:
    """One kind's plan as the planner makes it: its actions with their needs' gates (systemd,
    the user's manager: core/needs.py), ordered, blocks propagated."""
    return build_plan(spec, host, found, [kind])


def facts(values: dict[Probe[Any], Any]) -> Facts:
    """Facts as given, on a host that runs systemd unless `values` says otherwise."""
    return Facts(values={SystemdProbe(): SYSTEMD, **values}, results={})


def located(
    host: HostContext, programs: dict[str, str | None] | None = None, **paths: str | None
) -> dict[Probe[Any], Any]:
    """Where each program is (`node="/usr/bin/node"`; None: not installed), as discovered."""
    every = {**(programs or {}), **paths}
    return {
        ProgramLocationProbe.for_user(name, host): ProgramLocation(path)
        for name, path in every.items()
    }
