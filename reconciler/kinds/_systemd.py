"""The spec user's systemd manager, as the unit-related kinds need it (not a kind itself).

Every unit action (`enable`, `start`, `stop`, `daemon-reload`) talks to the user's manager.
Whether it answers is a fact of the one batched `systemctl --user show`: without linger and
without a login session it does not ("Failed to connect to bus"). Then those actions wait for
the `linger` action when the plan turns linger on (enabling linger starts the manager), and are
blocked with the reason otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reconciler.core.host import HostContext
from reconciler.core.probe import Facts, Probe
from reconciler.facts.systemd import UnitStatus, UnitStatusProbe
from reconciler.gateway.paths import names
from reconciler.kinds import linger
from reconciler.kinds.linger import LingerProbe
from reconciler.spec.model import Spec


def managed_units(spec: Spec) -> tuple[str, ...]:
    """The unit names the spec's profiles own, in profile order."""
    table = names(spec)
    return tuple(table.unit(p.name) for p in spec.profiles)


def manager_probes(spec: Spec, host: HostContext) -> Iterable[Probe[Any]]:
    """What every unit-related kind needs: the owned units' status and the linger flag."""
    if host.user is None:
        return
    for unit in managed_units(spec):
        yield UnitStatusProbe(unit)
    if spec.linger:
        yield LingerProbe(spec.host.user)


def unit_status(facts: Facts, unit: str) -> UnitStatus | None:
    """The unit's status, or None when it was not probed (a file that appeared meanwhile)."""
    probe = UnitStatusProbe(unit)
    if probe not in facts.values:
        return None
    return facts.get(probe)


def linger_planned(spec: Spec, facts: Facts) -> bool:
    """True when this plan turns linger on (the same test the linger kind makes)."""
    return bool(spec.linger) and not facts.get(LingerProbe(spec.host.user))


def manager_gate(spec: Spec, host: HostContext, facts: Facts) -> tuple[tuple[str, ...], str | None]:
    """(depends_on, blocked) for an action that needs the user's manager."""
    if host.user is None:
        return (), None
    status = unit_status(facts, managed_units(spec)[0])
    if status is None or status.reachable:
        return (), None
    if linger_planned(spec, facts):
        return (linger.ADDRESS,), None
    return (), (
        f"{status.detail} for {host.user.name}: set linger: true in the spec, or log in as "
        f"{host.user.name}"
    )
