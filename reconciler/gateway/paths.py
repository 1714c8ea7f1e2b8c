"""Where each gateway profile of a spec lives on this host, and who may change it.

The spec keeps `~` paths; here they are resolved against the spec user's home as probed (never
our own HOME: root plans for the user). Shared by the profile kinds and the backup inventory, so
the state root the unit points at is the state root that is created and backed up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.core.action import Action, Finding, KindPlan, PlanError
from reconciler.core.host import HostContext
from reconciler.core.probe import Facts, Probe
from reconciler.facts.codec import Wanted, records
from reconciler.facts.files import PathProbe, PathState, SecretEnvProbe
from reconciler.gateway.addresses import profile_address
from reconciler.gateway.naming import GATEWAY_UNIT_PREFIXES, PRODUCTS, ProductNames, product_names
from reconciler.spec.model import Profile, Spec

# Beside the config in the state root; holds `<PREFIX>GATEWAY_TOKEN=` for `auth: token`.
TOKEN_ENV_FILE = "gateway.env"


@dataclass(frozen=True)
class ProfilePaths:
    """Every path of one profile, resolved for this host."""

    profile: str
    state: Path
    credentials: Path
    workspace: Path
    config: Path
    token_env: Path
    unit: str  # the systemd unit name
    unit_file: Path


def home(host: HostContext) -> Path:
    """The spec user's home; `~user` (never probed, never written) when the user is missing."""
    return host.user.home if host.user is not None else Path(f"~{host.user_name}")


def expand(path: str, home_dir: Path) -> Path:
    """`~/x` -> home/x; `~` -> home; an absolute path as is; a relative one under home."""
    if path == "~":
        return home_dir
    if path.startswith("~/"):
        return home_dir / path[2:]
    candidate = Path(path)
    return candidate if candidate.is_absolute() else home_dir / candidate


def unit_dir(host: HostContext) -> Path:
    """The user's own systemd unit directory (where `gateway install` writes too)."""
    return home(host) / ".config/systemd/user"


def profile_paths(spec: Spec, profile: Profile, host: HostContext) -> ProfilePaths:
    names = product_names(spec.product)
    home_dir = home(host)
    state = expand(profile.state_dir or names.state_dir(profile.name), home_dir)
    workspace = expand(profile.workspace or names.workspace(profile.name), home_dir)
    unit = names.unit(profile.name)
    return ProfilePaths(
        profile=profile.name,
        state=state,
        credentials=state / "credentials",
        workspace=workspace,
        config=state / names.config_file,
        token_env=state / TOKEN_ENV_FILE,
        unit=unit,
        unit_file=unit_dir(host) / unit,
    )


def names(spec: Spec) -> ProductNames:
    return product_names(spec.product)


def address(profile: str, part: str) -> str:
    """`profile[ops].config`."""
    return profile_address(profile, part)


def config_probe(paths: ProfilePaths) -> PathProbe:
    """A profile's config: its text for the config kind, its times for the service's restart."""
    return PathProbe(paths.config, content=True)


def unit_probe(paths: ProfilePaths) -> PathProbe:
    """A profile's unit file: its text for the unit kind, its times for the service's restart."""
    return PathProbe(paths.unit_file, content=True)


def token_key(spec: Spec) -> str:
    return names(spec).env("GATEWAY_TOKEN")


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


def user_blocker(host: HostContext) -> str | None:
    """Why the spec user's files and services cannot be changed from here, or None."""
    if host.user is None:
        return f"user {host.user_name!r} does not exist on this host"
    if not host.can_act_for_user:
        return (
            f"changes {host.user.name}'s files and services; we are {host.invoker.name} "
            f"(run as {host.user.name} or as root)"
        )
    return None


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
    owns (only root could give it back)."""
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
        if host.user is not None:
            state = facts.get(probe_of(profile_paths(spec, profile, host)))
            found = foreign_owner(address_of(profile.name), state, host)
            findings.extend([found] if found else [])
    return KindPlan(actions=tuple(actions), findings=tuple(findings), errors=tuple(errors))


@records
def _where_new_profiles_would_live(spec: Spec, host: HostContext) -> Wanted:
    """The directories a snapshot lists (names only, limited to those a gateway path can
    have): so a plan against it for a new profile knows "that path does not exist"."""
    if host.user is None:
        return Wanted()
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
