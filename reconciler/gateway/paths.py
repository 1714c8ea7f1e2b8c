"""Where each gateway profile of a spec lives on this host, and who may change it.

The spec keeps `~` paths; here they are resolved against the spec user's home as probed (never
our own HOME: root plans for the user). Shared by the profile kinds and the backup inventory, so
the state root the unit points at is the state root that is created and backed up.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.core.host import Account, HostContext, RecordedLookups
from reconciler.frozen import frozen
from reconciler.gateway.addresses import profile_address
from reconciler.spec.model import Profile, Spec
from reconciler.spec.naming import ProductNames, config_file_in, product_names

# Beside the config in the state root; holds `<PREFIX>GATEWAY_TOKEN=` for `auth: token`.
TOKEN_ENV_FILE = "gateway.env"


@frozen
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


def placeholder_host(spec: Spec, home_dir: Path) -> HostContext:
    """A host that is only the spec's user with home `home_dir`: what a kind's `desired`
    resolves paths against (nothing is looked up on this machine)."""
    user = Account(spec.host.user, -1, -1, home_dir)
    return HostContext(
        hostname=spec.host.name,
        invoker=user,
        user=user,
        user_name=spec.host.user,
        recorded=RecordedLookups(),
    )


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
        config=state / config_file_in(spec.product, state.name),
        token_env=state / TOKEN_ENV_FILE,
        unit=unit,
        unit_file=unit_dir(host) / unit,
    )


def uses_token_file(spec: Spec, profile: Profile) -> bool:
    """Whether the profile's gateway gets its token from `gateway.env` (EnvironmentFile=).

    `auth: token`, and every openclaw profile: openclaw has no token-less mode across the
    releases we install (2026.1.x refuses to start without a token; 2026.9.x makes up a new
    one at every start, so every client and paired browser would lose it at each restart),
    so `auth: none` on openclaw keeps one stable token there (docs/host-facts.md §8).
    """
    return profile.auth == "token" or spec.product == "openclaw"


def names(spec: Spec) -> ProductNames:
    return product_names(spec.product)


def address(profile: str, part: str) -> str:
    """`profile[ops].config`."""
    return profile_address(profile, part)


def token_key(spec: Spec) -> str:
    return names(spec).env("GATEWAY_TOKEN")
