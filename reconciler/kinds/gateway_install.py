"""Versioned gateway installs: every version a profile wants, side by side under the prefix.

Wants (only with `runtime.gateway.install: versioned`, gateway/versions.py): for each version
a profile wants (`gateway_version`, else `runtime.gateway.version`) a complete install in
`<prefix>/<version>/` from the package.json the spec implies (extra dependencies, overrides);
no leftovers of killed installs; and no more than `runtime.gateway.keep` previous versions
besides those a profile runs or wants (the newest by install time).
Probes: one listing of the prefix (facts.gateway_versions: versions, each one's completion
marker and installed package version, leftovers); for a root-owned prefix (outside the home),
the lstat of each of its existing components, all of which must be root's and not group- or
world-writable, or the prefix is blocked; node and npm (shared with the runtime kind),
the units' files (which version each profile runs now), the gateway on PATH (adoption).
Fixes: `InstallVersion` (atomic: temp dir, npm install --prefix as the prefix's owner, the
entry's `--version` checked, renamed into place) per missing version; `RemoveTree` for a
leftover, an incomplete version directory in the way, and each version retention prunes (after
the units moved away from it and their services restarted). npm or node missing: the install is blocked with the reason.
Adoption: a global install (npm install -g, or the gateway's own `gateway install`) is left
alone and reported; the units move to the versioned install (gateway_unit renders them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from reconciler.core.action import (
    Action,
    AttributeChange,
    Finding,
    InstallVersion,
    KindPlan,
    RemoveTree,
)
from reconciler.core.diff import attribute_changes
from reconciler.core.host import HostContext
from reconciler.core.kind import NEEDS_USER, NO_FACTS, Kind, register, spec_user
from reconciler.core.probe import Facts, Probe
from reconciler.facts.files import DirectoryListing, PathChainProbe
from reconciler.facts.gateway_versions import InstalledVersions, retained, versions_probe
from reconciler.facts.profile_files import gateway_units_probe, unit_probe
from reconciler.facts.switches import SwitchMemoryProbe, memory_dir
from reconciler.gateway.addresses import (
    GATEWAY,
    NODE,
    leftover_address,
    node_version_address,
    service_address,
    unit_address,
    version_address,
)
from reconciler.gateway.node import node_binary, profile_node
from reconciler.gateway.paths import home, names, profile_paths
from reconciler.gateway.versions import (
    entry_relative,
    install_dir,
    package_json,
    prefix_path,
    profile_version,
    user_owned,
    version_in_exec,
    versioned,
    wanted_versions,
)
from reconciler.kinds._programs import gateway_program, location_probe, version_probe
from reconciler.spec.model import Spec

__all__ = ["GatewayInstallKind"]

Scope = Literal["system", "user"]
NPM_TIMEOUT_S = 900.0  # a fresh install here took 39-50 s; a slow registry, minutes


def host_unit_versions(spec: Spec, host: HostContext, facts: Facts) -> dict[str, str]:
    """unit file name -> the installed version it runs, for every gateway unit in the user's
    unit directory, the spec's or not (a unit the spec no longer owns still runs its gateway:
    retention must not remove that version under it)."""
    probe = gateway_units_probe(host)
    if probe not in facts.values:  # the user: declared (NEEDS_USER), checked by the planner
        return {}
    prefix = prefix_path(spec, home(host))
    listing: DirectoryListing = facts.get(probe)
    found: dict[str, str] = {}
    for entry in listing.entries:
        for line in (entry.text or "").splitlines():
            if line.startswith("ExecStart="):
                version = version_in_exec(line, prefix)
                if version is not None:
                    found[entry.path.name] = version
    return found


def running_versions(spec: Spec, host: HostContext, facts: Facts) -> dict[str, str]:
    """profile -> the installed version its unit file names now (what runs, or will on restart)."""
    prefix = prefix_path(spec, home(host))
    found: dict[str, str] = {}
    for profile in spec.profiles:
        text = facts.get(unit_probe(profile_paths(spec, profile, host))).text or ""
        for line in text.splitlines():
            if line.startswith("ExecStart="):
                version = version_in_exec(line, prefix)
                if version is not None:
                    found[profile.name] = version
    return found


@register(15)
class GatewayInstallKind(Kind):
    name = "gateway.version"
    needs = NEEDS_USER

    def placeholders(self, spec: Spec, host: HostContext) -> Iterable[Action]:
        if versioned(spec):
            for v in wanted_versions(spec):
                yield Action(version_address(v), "create", _why(spec, v))

    def desired(self, spec: Spec, home: Path) -> Mapping[str, Any]:
        """How versions are installed, where, with which package.json, how many kept; with
        versioned installs, the version each profile runs."""
        gateway = spec.runtime.gateway
        on = versioned(spec)
        return {
            "runtime": {
                "gateway": {
                    "install": gateway.install,
                    "prefix": str(prefix_path(spec, home)),
                    "overrides": dict(gateway.overrides),
                    "extra": dict(gateway.extra),
                    "keep": gateway.keep,
                }
            },
            "profiles": {
                p.name: {"gateway_version": profile_version(spec, p) if on else None}
                for p in spec.profiles
            },
        }

    def discover(self, spec: Spec, host: HostContext) -> Iterable[Probe[Any]]:
        if versioned(spec):
            for program in ("node", "npm", gateway_program(spec)):
                yield location_probe(program, host)
            if host.user is not None:
                yield gateway_units_probe(host)

    def probes(
        self, spec: Spec, host: HostContext, found: Facts = NO_FACTS
    ) -> Iterable[Probe[Any]]:
        if not versioned(spec):
            return
        yield versions_probe(spec, host)
        if not user_owned(spec):
            yield PathChainProbe(prefix_path(spec, home(host)))
        yield SwitchMemoryProbe(memory_dir(spec_user(host).home))
        yield version_probe("node", host, found)
        yield version_probe(gateway_program(spec), host, found)
        for profile in spec.profiles:
            yield unit_probe(profile_paths(spec, profile, host))

    def plan(self, spec: Spec, host: HostContext, facts: Facts) -> KindPlan:
        if not versioned(spec):
            return KindPlan()
        listing = facts.get(versions_probe(spec, host))
        scope: Scope = "user" if user_owned(spec) else "system"
        running = running_versions(spec, host, facts)
        blocked = _blocker(spec, host, facts, listing, scope)
        installs = (
            _install(spec, host, facts, listing, scope, v, running, blocked)
            for v in wanted_versions(spec)
        )
        actions = [
            *(a for a in installs if a is not None),
            *(
                Action(
                    leftover_address(name),
                    "delete",
                    f"a killed install or removal left {listing.prefix / name}; it is never used",
                    (RemoveTree(listing.prefix, name, scope),),
                    blocked=blocked,
                )
                for name in listing.leftovers
            ),
            *_pruned(spec, listing, scope, blocked, host_unit_versions(spec, host, facts)),
        ]
        return KindPlan(actions=tuple(actions), findings=_adoption(spec, host, facts, listing))


def _why(spec: Spec, version: str) -> str:
    users = [p.name for p in spec.profiles if profile_version(spec, p) == version]
    return (
        f"profile{'s' if len(users) > 1 else ''} {', '.join(users)} "
        f"run{'' if len(users) > 1 else 's'} {spec.runtime.gateway.package}@{version}"
    )


def _blocker(
    spec: Spec, host: HostContext, facts: Facts, listing: InstalledVersions, scope: Scope
) -> str | None:
    """Why nothing under the prefix can be changed from here, or None (that we may act as the
    user, for the user's prefix, is the planner's to ask: core/needs.py)."""
    if listing.error:
        return f"{listing.prefix}: {listing.error}"
    if scope == "system":
        unsafe = facts.get(PathChainProbe(listing.prefix)).not_root_only()
        if unsafe is not None:
            return (
                f"{unsafe.path} ({unsafe.kind}, uid {unsafe.uid}, mode {unsafe.mode or 0:04o}) is "
                f"not a directory only root can change, so another account could swap what root "
                f"installs and runs in {listing.prefix}: choose a prefix whose every directory "
                "is root's and not group- or world-writable (e.g. /opt/clawdbot), or one in "
                "the user's home (installed as the user)"
            )
    owner = host.user.uid if scope == "user" and host.user is not None else 0
    if listing.exists and listing.uid != owner:
        where, whose = (
            ("in the home", "the user's") if scope == "user" else ("outside it", "root's")
        )
        return (
            f"{listing.prefix} belongs to uid {listing.uid}, but a prefix {where} must be "
            f"{whose}; chown it, or point runtime.gateway.prefix elsewhere"
        )
    return None


def _install(
    spec: Spec,
    host: HostContext,
    facts: Facts,
    listing: InstalledVersions,
    scope: Scope,
    version: str,
    running: dict[str, str],
    blocked: str | None,
) -> Action | None:
    """Install `version` (removing an incomplete directory in its way first), or reinstall it
    when it was installed from another package.json (overrides or extra changed); None when it
    is installed as the spec says."""
    target = install_dir(listing.prefix, version)
    present = listing.get(version)
    wanted = package_json(spec, version)
    owner = host.user.uid if scope == "user" and host.user is not None else 0
    if present is not None and present.uid is not None and present.uid != owner:
        # Whoever owns it could change the code a unit runs: never used, never removed by us.
        return Action(
            version_address(version),
            "update",
            f"{_why(spec, version)}: {target} belongs to uid {present.uid}, not to the "
            f"prefix's owner (uid {owner})",
            blocked=f"{target} belongs to uid {present.uid}: another account could change the "
            f"gateway it holds; remove it as root (rm -r {target}) and run again",
        )
    reinstall = present is not None and present.usable and present.manifest not in (None, wanted)
    if present is not None and present.usable and not reinstall:
        return None
    node = facts.get(version_probe("node", host, facts)).path
    npm = facts.get(location_probe("npm", host)).path
    runs_on = next(
        (profile_node(spec, p) for p in spec.profiles if profile_version(spec, p) == version),
        None,
    )
    memory = memory_dir(spec_user(host).home)
    failed = facts.get(SwitchMemoryProbe(memory)).failed_install(version, wanted)
    if failed is not None and blocked is None:
        users = tuple(p.name for p in spec.profiles if profile_version(spec, p) == version)
        blocked = failed.blocked_message(spec.runtime.gateway.package, users)
    operations: list[RemoveTree | InstallVersion] = []
    reason = f"{_why(spec, version)}: install it side by side into {target}"
    triggers: tuple[str, ...] = ()
    if reinstall:
        reason = (
            f"{_why(spec, version)}: {target} was installed from another package.json "
            "(runtime.gateway.overrides or extra changed): reinstall it from the spec's, "
            "replaced in one rename"
        )
        # The gateways running it load the new dependencies only when restarted.
        triggers = tuple(service_address(p) for p, v in sorted(running.items()) if v == version)
    elif present is not None:
        state = (
            "not a directory"
            if present.kind != "directory"
            else "incomplete"
            if not present.complete
            else f"holding {present.package_version}"
        )
        reason = f"{_why(spec, version)}: {target} is {state}; replace it with a checked install"
        operations.append(RemoveTree(listing.prefix, version, scope))
        if version in running.values():
            blocked = blocked or (
                f"{target} is not a complete install, but a unit runs it: fix the unit first"
            )
    operations.append(
        InstallVersion(
            prefix=listing.prefix,
            version=version,
            package_json=wanted,
            entry=entry_relative(spec),
            npm=npm or "npm",
            # The node its profiles run (an installed one is installed first: `after`): the
            # engines check and `--version` run with it.
            node=str(node_binary(home(host), runs_on)) if runs_on else node or "node",
            scope=scope,
            timeout_s=NPM_TIMEOUT_S,
            replace=reinstall,
            memory=memory,
        )
    )
    if blocked is None and node is None:
        blocked = "node: not installed (npm and the gateway need node; we never install node)"
    if blocked is None and npm is None:
        blocked = "npm: not installed (it comes with node)"
    installed = present.manifest if present is not None else None
    return Action(
        version_address(version),
        "create" if present is None else "update",
        reason,
        tuple(operations),
        changes=_manifest_changes(installed, wanted)
        if reinstall
        else attribute_changes({"installed": version}, {"installed": None}),
        blocked=blocked,
        after=(NODE, *((node_version_address(runs_on),) if runs_on else ())),
        # What a reviewer approves: the package.json the version is installed from.
        diff=manifest_diff(target / "package.json", installed, wanted),
        triggers=triggers,
    )


def _manifest_changes(before: str | None, after: str) -> tuple[AttributeChange, ...]:
    """What changed in the package.json (`package.json.overrides.x`, ...), key by key."""
    import json

    try:
        old = json.loads(before or "{}")
    except ValueError:
        old = {"unreadable": before}
    return attribute_changes({"package.json": json.loads(after)}, {"package.json": old})


def manifest_diff(path: Path, before: str | None, after: str) -> str:
    """A unified diff of a version's package.json (from /dev/null for a new install)."""
    import difflib

    return "".join(
        difflib.unified_diff(
            (before or "").splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=str(path) if before is not None else "/dev/null",
            tofile=str(path),
        )
    )


def _pruned(
    spec: Spec,
    listing: InstalledVersions,
    scope: Scope,
    blocked: str | None,
    units: dict[str, str],
) -> Iterable[Action]:
    """Retention: remove the versions nobody wants beyond `keep` previous ones.

    A version that a unit the spec does not own runs (`units`: a leftover of another product
    name, a unit written by hand) is never removed: its gateway would die at its next start.

    A version a unit still names (the one a profile moves away from in this plan) is removed
    only after that unit is rewritten and its service restarted (`after`): when either fails or
    is blocked, the removal does not run. So one apply converges, and the version that runs is
    never removed under it.
    """
    keep = spec.runtime.gateway.keep
    owned = {names(spec).unit(p.name) for p in spec.profiles}
    foreign = {v for unit, v in units.items() if unit not in owned}
    _, pruned = retained(listing.versions, (*wanted_versions(spec), *sorted(foreign)), keep)
    for version in pruned:
        entry = listing.get(version)
        incomplete = entry is not None and not entry.usable
        yield Action(
            version_address(version),
            "delete",
            f"{listing.prefix / version} is incomplete and no profile wants it"
            if incomplete
            else f"no profile wants {version}, and runtime.gateway.keep is {keep}: "
            "older previous versions are removed",
            (RemoveTree(listing.prefix, version, scope),),
            blocked=blocked,
            after=tuple(a(p.name) for p in spec.profiles for a in (unit_address, service_address)),
        )


def _adoption(
    spec: Spec, host: HostContext, facts: Facts, listing: InstalledVersions
) -> tuple[Finding, ...]:
    """A global install is left alone: reported, never removed or upgraded."""
    gateway = facts.get(version_probe(gateway_program(spec), host, facts))
    if gateway.path is None or Path(gateway.path).is_relative_to(listing.prefix):
        return ()
    return (
        Finding(
            GATEWAY,
            f"{gateway.path} ({gateway.version or 'version unknown'}) is a global install: left "
            f"alone (remove it yourself once unused); the units run the versioned installs "
            f"under {listing.prefix}",
        ),
    )
