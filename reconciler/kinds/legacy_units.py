"""Legacy and duplicate gateway units: unit files of any gateway name the spec does not own.

Wants: nothing of its own by default; these are reported. A gateway unit left behind by an
upgrade or a rename (`clawdbot-gateway.service` next to `openclaw-gateway-ops.service`) starts
at boot and fights the spec's gateway for its port (upstream's "two gateways" problem). With
`prune: true` on a profile, unowned units claiming that profile's port are removed; with
top-level `prune_units: true` (its section, reconciler/spec/sections/prune_units/), every
unowned gateway unit is.
Probes: the user's unit directory, in-process: `*.service` files whose names start with a
gateway prefix of any product name (`GATEWAY_UNIT_PREFIXES`; backups like
`.reconciler-backup` or `.bak` do not end in `.service`); their state comes from the shared
batched `systemctl --user show`. The port a unit claims is read from its ExecStart `--port N`
or an `*_GATEWAY_PORT=N` assignment (no other content of the file is ever shown: an upstream
unit holds the token in clear).
Compares: the names against the units the spec's profiles own.
Fixes: `systemctl --user stop`, `disable`, then remove the file (a backup is kept beside it,
which systemd ignores); the shared `systemd.daemon-reload` runs after.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from reconciler.core.action import Action, Finding, KindPlan, RemoveFile
from reconciler.core.diff import attribute_changes
from reconciler.core.host import HostContext
from reconciler.core.kind import NEEDS_USER, NO_FACTS, Kind, register
from reconciler.core.probe import Facts, Probe
from reconciler.facts.files import DirectoryListing, DirectoryProbe, PathState
from reconciler.facts.profile_files import gateway_units_probe
from reconciler.facts.systemd import UnitStatus, UnitStatusProbe
from reconciler.frozen import frozen
from reconciler.gateway.addresses import DAEMON_RELOAD, legacy_unit_address, service_address
from reconciler.kinds._move import replaced_units
from reconciler.kinds._systemd import (
    managed_units,
    manager_probes,
    systemctl,
    unit_status,
)
from reconciler.spec.model import Spec

SUFFIX = ".service"
legacy_address = legacy_unit_address


def owned_units(spec: Spec) -> frozenset[str]:
    """The spec's units, and the units of the product it succeeds that a product move replaces
    (the unit kind plans their removal, behind the move's health gate: kinds/_move.py)."""
    return frozenset(managed_units(spec)) | replaced_units(spec)


def directory_probe(host: HostContext) -> DirectoryProbe:
    return gateway_units_probe(host)


def candidate_names(spec: Spec, host: HostContext, found: Facts) -> tuple[str, ...]:
    """Unowned gateway unit names in the unit directory, as the discovery round listed it.

    Their `UnitStatusProbe`s are declared before the main round so that they join the one
    batched `systemctl --user show`.
    """
    probe = directory_probe(host)
    if probe not in found.values:
        return ()
    listing: DirectoryListing = found.get(probe)
    owned = owned_units(spec)
    return tuple(sorted(e.path.name for e in listing.entries if e.path.name not in owned))


_PORT_FLAG = re.compile(r"--port(?:=|\s+)[\"']?(\d+)")
_PORT_ENV = re.compile(r"\b[A-Z]+_GATEWAY_PORT=[\"']?(\d+)")


def claimed_port(text: str) -> int | None:
    """The port a unit's gateway would listen on: ExecStart `--port N`, else `*_GATEWAY_PORT=N`.

    Pure; only `ExecStart=` and `Environment=` lines are looked at (the last assignment wins,
    as in systemd).
    """
    flag: int | None = None
    env: int | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("ExecStart="):
            match = _PORT_FLAG.search(line)
            flag = int(match.group(1)) if match else None
        elif line.startswith("Environment="):
            match = _PORT_ENV.search(line)
            if match:
                env = int(match.group(1))
    return flag if flag is not None else env


@frozen
class LegacyUnit:
    """An unowned gateway unit: its file, state, the port it claims and who claims it too."""

    name: str
    file: PathState
    status: UnitStatus | None
    port: int | None
    profile: str | None  # the spec profile whose port it claims
    prune: bool

    def state(self) -> str:
        if self.status is None or not self.status.reachable:
            return "state unknown"
        return f"{self.status.active_state or 'inactive'}, {self.status.unit_file_state or '-'}"


def legacy_units(spec: Spec, host: HostContext, facts: Facts) -> tuple[LegacyUnit, ...]:
    """Pure: the unowned gateway units found, each with whether the spec prunes it."""
    listing: DirectoryListing = facts.get(directory_probe(host))
    owned = owned_units(spec)
    by_port = {p.port: p for p in spec.profiles}
    units: list[LegacyUnit] = []
    for entry in listing.entries:
        name = entry.path.name
        if name in owned:
            continue
        port = claimed_port(entry.text) if entry.text is not None else None
        profile = by_port.get(port) if port is not None else None
        prune = spec.prune_units or (profile is not None and profile.prune)
        units.append(
            LegacyUnit(
                name,
                entry,
                unit_status(facts, name),
                port,
                profile.name if profile else None,
                prune,
            )
        )
    return tuple(units)


@register(60)
class LegacyUnitsKind(Kind):
    name = "unit.legacy"
    needs = NEEDS_USER  # nothing to look for without the user's unit directory

    def desired(self, spec: Spec, home: Path) -> Mapping[str, Any]:
        """Which unowned gateway units are removed: all of them, or those on a profile's port."""
        return {
            "prune_units": spec.prune_units,
            "profiles": {p.name: {"prune": p.prune} for p in spec.profiles},
        }

    def discover(self, spec: Spec, host: HostContext) -> Iterable[Probe[Any]]:
        yield directory_probe(host)

    def probes(
        self, spec: Spec, host: HostContext, found: Facts = NO_FACTS
    ) -> Iterable[Probe[Any]]:
        yield directory_probe(host)
        yield from manager_probes(spec, host)
        for unit in candidate_names(spec, host, found):
            yield UnitStatusProbe(unit)

    def plan(self, spec: Spec, host: HostContext, facts: Facts) -> KindPlan:
        actions: list[Action] = []
        findings: list[Finding] = []
        for unit in legacy_units(spec, host, facts):
            claim = (
                f"; it claims port {unit.port} of profile {unit.profile}: two gateways would "
                "fight over it"
                if unit.profile
                else (f"; port {unit.port}" if unit.port is not None else "")
            )
            if not unit.prune:
                hint = (
                    f"set prune: true on profile {unit.profile} or prune_units: true"
                    if unit.profile
                    else "set prune_units: true"
                )
                findings.append(
                    Finding(
                        legacy_address(unit.name),
                        f"gateway unit the spec does not own ({unit.state()}){claim}; "
                        f"left alone ({hint} to remove it)",
                        "warning" if unit.profile else "info",
                    )
                )
                continue
            actions.append(plan_removal(spec, unit, claim))
        return KindPlan(actions=tuple(actions), findings=tuple(findings))


def plan_removal(spec: Spec, unit: LegacyUnit, claim: str) -> Action:
    """Stop, disable and remove a gateway unit the spec does not own (the planner gates it on
    the user's manager, as every `systemctl --user` step)."""
    why = (
        f"prune: true on profile {unit.profile}"
        if unit.profile and not spec.prune_units
        else "prune_units: true"
    )
    return Action(
        legacy_address(unit.name),
        "delete",
        f"{unit.name} is a gateway unit the spec does not own ({why}){claim}",
        (
            systemctl("stop", unit.name),
            systemctl("disable", unit.name),
            RemoveFile(unit.file.path, backup=True),
        ),
        changes=attribute_changes({}, {"file": str(unit.file.path), "state": unit.state()}),
        warning=f"two gateways on port {unit.port}" if unit.profile else None,
        # The manager forgets the unit; the profile whose port it claims starts after it.
        triggers=(DAEMON_RELOAD, *((service_address(unit.profile),) if unit.profile else ())),
    )
