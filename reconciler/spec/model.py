"""The typed spec: what the YAML says, after validation and defaults, before host resolution.

Everything here is frozen. Paths keep their `~` form; the resource kinds resolve them against the
probed host (the user's home), so the same spec can be planned for any machine.
"""

from __future__ import annotations

from dataclasses import field
from pathlib import Path
from typing import Literal

from reconciler.frozen import frozen
from reconciler.spec.sections.backup.model import (
    DEFAULT_BACKUP_EXCLUDES as DEFAULT_BACKUP_EXCLUDES,
)
from reconciler.spec.sections.backup.model import Backup as Backup
from reconciler.spec.sections.backup.model import Consistency as Consistency
from reconciler.spec.sections.backup.model import Retention as Retention
from reconciler.spec.sections.docker.model import Docker as Docker
from reconciler.spec.sections.docker.model import DockerPolicy as DockerPolicy
from reconciler.spec.sections.linger import model as linger_section
from reconciler.spec.sections.linger.model import Linger as Linger
from reconciler.spec.sections.metrics.model import Metrics as Metrics
from reconciler.spec.sections.node.model import Node as Node
from reconciler.spec.sections.prune_units import model as prune_units_section
from reconciler.spec.sections.reconcile.model import GitSource as GitSource
from reconciler.spec.sections.reconcile.model import Reconcile as Reconcile
from reconciler.spec.sections.reconcile.model import Timer as Timer
from reconciler.spec.sections.tailscale.model import FunnelPolicy as FunnelPolicy
from reconciler.spec.sections.tailscale.model import ServeEntry as ServeEntry
from reconciler.spec.sections.tailscale.model import Tailscale as Tailscale

API_VERSION = "reconciler/v1"

Product = Literal["clawdbot", "openclaw"]
Bind = Literal["loopback", "lan", "tailnet", "auto"]
AuthMode = Literal["none", "token"]
InstallMode = Literal["global", "versioned"]


@frozen
class SshAccess:
    """How the admin machine reaches the host (`host.ssh`); None fields: ssh's own defaults."""

    address: str
    user: str | None = None
    port: int | None = None
    python: str = "python3"


@frozen
class Host:
    """The machine the spec is for and the user whose gateways it runs."""

    name: str
    user: str
    ssh: SshAccess | None = None
    # Absolute directories outside the home where state_dir/workspace may lie (validated).
    data_roots: tuple[str, ...] = ()


@frozen
class GatewayRuntime:
    """The gateway package: optional version pin, optional explicit command path, and how
    pinned versions are installed side by side (docs/updates.md)."""

    package: str
    version: str | None = None
    command: str | None = None  # a gateway we do not install, only check
    # How long a started gateway may take to answer on its port (fresh installs compile for 30-45 s).
    start_timeout_s: float = 120.0
    # versioned: side by side under prefix (docs/updates.md); global: `npm install -g`.
    install: InstallMode = "global"
    # After a version switch's first healthy answer, how long it must stay healthy (no crash)
    # before the switch is kept (docs/updates.md).
    health_window_s: float = 10.0
    # Start a version no unit runs yet once before its switch, while the old one serves (its
    # compile caches warm: shorter downtime); False on hosts too small for two gateways at
    # once (docs/updates.md, warm-up).
    warm_up: bool = True
    # Where versioned installs live (<prefix>/<version>/); None: ~/.local/lib/<product>.
    prefix: str | None = None
    # npm `overrides` and extra dependencies of every version's package.json, sorted by name.
    overrides: tuple[tuple[str, str], ...] = ()
    extra: tuple[tuple[str, str], ...] = ()
    keep: int = 1  # previous versions kept besides those a profile runs or wants


@frozen
class Runtime:
    """Prerequisites that are checked or installed (node), pinned (gateway) or probed (docker)."""

    node: Node
    gateway: GatewayRuntime
    docker: Docker = field(default_factory=Docker)


@frozen
class Profile:
    """One gateway instance: its own port, state root and workspace."""

    name: str
    port: int
    state_dir: str | None = None  # None: the product's convention (~/.clawdbot-<name>)
    workspace: str | None = None  # None: ~/clawd-<name> (profile default: ~/clawd)
    bind: Bind = "loopback"
    auth: AuthMode = "none"
    prune: bool = False  # stop/disable/remove unmanaged gateway units claiming this port
    gateway_version: str | None = None  # overrides runtime.gateway.version (a canary)
    node: str | None = None  # an exact node version, installed; overrides runtime.node


@frozen
class Spec:
    """A validated spec with every default filled in."""

    host: Host
    runtime: Runtime
    profiles: tuple[Profile, ...]
    product: Product = "clawdbot"
    linger: Linger = linger_section.DEFAULT
    tailscale: Tailscale | None = None  # None: the spec does not manage Tailscale at all
    prune_units: bool = prune_units_section.DEFAULT
    reconcile: Reconcile = field(default_factory=Reconcile)
    metrics: Metrics | None = None  # None: no metrics file
    backup: Backup | None = None  # None: the spec does not manage backups
    api_version: str = API_VERSION
    # Where it came from, for plans and run records.
    path: Path | None = None
    sha256: str | None = None

    def profile(self, name: str) -> Profile:
        """The profile called `name` (KeyError when absent)."""
        for p in self.profiles:
            if p.name == name:
                return p
        raise KeyError(name)

    def backed_up_profiles(self) -> tuple[Profile, ...]:
        """The profiles `backup.profiles` names (all when it names none); () without backups."""
        if self.backup is None:
            return ()
        wanted = self.backup.profiles
        return tuple(p for p in self.profiles if wanted is None or p.name in wanted)
