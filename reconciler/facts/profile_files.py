"""A profile's files as facts: the probes of its config, unit file and token, who owns them,
and the plan of a file kind over every profile.

Where the files are is `gateway/paths.py` (pure, below the facts); what is on the host about them
is here, so the probes are declared once for every kind (and use case) that reads them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.core.action import Action, Finding, KindPlan, PlanError
from reconciler.core.host import HostContext
from reconciler.core.kind import NEEDS_USER
from reconciler.core.probe import Facts, Probe
from reconciler.facts.codec import Wanted, records
from reconciler.facts.files import DirectoryProbe, PathProbe, PathState, SecretEnvProbe
from reconciler.gateway.paths import ProfilePaths, expand, home, profile_paths, token_key, unit_dir
from reconciler.spec.model import Profile, Spec
from reconciler.spec.naming import GATEWAY_UNIT_PREFIXES, PRODUCTS


def gateway_units_probe(host: HostContext) -> DirectoryProbe:
    """Every gateway unit file of any product name in the user's unit directory, with its
    text: the spec's own and any other (legacy units report them, retention keeps what they
    run). One listing, asked for by both."""
    return DirectoryProbe(unit_dir(host), GATEWAY_UNIT_PREFIXES, ".service", content=True)


def config_probe(paths: ProfilePaths) -> PathProbe:
    """A profile's config: its text for the config kind, its times for the service's restart."""
    return PathProbe(paths.config, content=True)


def unit_probe(paths: ProfilePaths) -> PathProbe:
    """A profile's unit file: its text for the unit kind, its times for the service's restart."""
    return PathProbe(paths.unit_file, content=True)


def token_probe(spec: Spec, paths: ProfilePaths) -> SecretEnvProbe:
    """Whether a profile's `gateway.env` holds its token (never the token itself)."""
    return SecretEnvProbe(paths.token_env, token_key(spec))


def owner_name(state: PathState, host: HostContext) -> str | None:
    """Who owns a path, by the spec user's name when it is their uid (tests and containers may
    give the spec's user a uid that /etc/passwd calls something else)."""
    if host.user is not None and state.uid == host.user.uid:
        return host.user.name
    return state.owner


def owner_drift(state: PathState, host: HostContext) -> bool:
    """True when `state` belongs to someone else than the spec's user and we can change that.

    Only root can give a path to another owner. Anyone else writes files as themselves (so
    what we write is the user's by construction), and a path someone else owns is reported by
    `foreign_owner` instead: a plan must not hold an action that cannot succeed.
    """
    return host.is_root and host.user is not None and state.exists and state.uid != host.user.uid


def foreign_owner(address: str, state: PathState, host: HostContext) -> Finding | None:
    """A warning for a path the spec's user does not own, when we are not root to fix it."""
    if host.is_root or host.user is None or not state.exists or state.uid == host.user.uid:
        return None
    return Finding(
        address,
        f"{state.path} belongs to {owner_name(state, host)}, not {host.user.name}: the gateway "
        "may not be able to use it; run apply as root to give it back",
        "warning",
    )


def plan_profile_files(
    spec: Spec,
    host: HostContext,
    facts: Facts,
    *,
    plan_one: Callable[[Spec, Profile, HostContext, Facts], Action | None],
    address_of: Callable[[str], str],
    probe_of: Callable[[ProfilePaths], Probe[Any]],
) -> KindPlan:
    """A file kind's plan over every profile: one action each (or none), a plan error for a
    profile whose file cannot be handled (`PlanError`), and a finding for a file another user
    owns (only root could give it back). For kinds that need the spec's user."""
    actions: list[Action] = []
    findings: list[Finding] = []
    errors: list[str] = []
    for profile in spec.profiles:
        try:
            action = plan_one(spec, profile, host, facts)
        except PlanError as exc:
            errors.append(f"{address_of(profile.name)}: {exc}")
            continue
        if action is not None:
            actions.append(action)
        state = facts.get(probe_of(profile_paths(spec, profile, host)))
        found = foreign_owner(address_of(profile.name), state, host)
        findings.extend([found] if found else [])
    return KindPlan(actions=tuple(actions), findings=tuple(findings), errors=tuple(errors))


@records(needs=NEEDS_USER)
def _where_new_profiles_would_live(spec: Spec, host: HostContext) -> Wanted:
    """The directories a snapshot lists (names only, limited to those a gateway path can
    have): so a plan against it for a new profile knows "that path does not exist"."""
    home_dir = home(host)
    home_prefixes = {".config"}
    for names in PRODUCTS.values():
        home_prefixes |= {f".{names.state_prefix}", names.workspace_prefix}
    others: set[Path] = set()
    for profile in spec.profiles:
        for given in (profile.state_dir, profile.workspace):
            if given is None:
                continue
            path = expand(given, home_dir)
            if path.parent == home_dir:
                home_prefixes.add(path.name)
            else:
                others.add(path.parent)
    listed = [
        (home_dir, tuple(sorted(home_prefixes))),
        (home_dir / ".config", ("systemd",)),
        (home_dir / ".config/systemd", ("user",)),
        (unit_dir(host), GATEWAY_UNIT_PREFIXES),
    ]
    listed += [(path, ()) for path in sorted(others)]
    return Wanted(directories=tuple(listed))
