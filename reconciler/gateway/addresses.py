"""Every action address one kind needs of another, in one place.

A kind names its own actions with these, and a handler finds the actions it depends on or is
triggered by with the same functions: no kind builds another kind's address by hand, and no
kind imports another to learn it.
"""

from __future__ import annotations

LINGER = "linger"
NODE = "runtime.node"
GATEWAY = "runtime.gateway"
DOCKER = "runtime.docker"
OPERATOR = "tailscale.operator"
# The one reload of the user's manager after the gateway units change.
DAEMON_RELOAD = "systemd.daemon-reload"
# The metrics textfile directory (spec `metrics.textfile_dir`).
METRICS_DIR = "metrics.textfile_dir"


def profile_address(profile: str, part: str) -> str:
    """`profile[ops].config`."""
    return f"profile[{profile}].{part}"


def state_address(profile: str) -> str:
    return profile_address(profile, "state")


def workspace_address(profile: str) -> str:
    return profile_address(profile, "workspace")


def config_address(profile: str) -> str:
    return profile_address(profile, "config")


def unit_address(profile: str) -> str:
    return profile_address(profile, "unit")


def service_address(profile: str) -> str:
    return profile_address(profile, "service")


def health_address(profile: str) -> str:
    return profile_address(profile, "health")


def version_address(version: str) -> str:
    """One installed gateway version (install, or removal by retention): `gateway.version[X]`."""
    return f"gateway.version[{version}]"


def leftover_address(name: str) -> str:
    """A leftover of a killed install or removal under the prefix: `gateway.leftover[.install-X]`."""
    return f"gateway.leftover[{name}]"


def node_version_address(version: str) -> str:
    """One installed node version (install, or removal by retention): `node.version[X]`."""
    return f"node.version[{version}]"


def node_leftover_address(name: str) -> str:
    """A leftover of a killed node install or removal: `node.leftover[.install-X]`."""
    return f"node.leftover[{name}]"


def legacy_unit_address(unit: str) -> str:
    """The removal of an unowned gateway unit file: `unit[clawdbot-gateway.service]`."""
    return f"unit[{unit}]"


def legacy_unit_name(address: str) -> str | None:
    """The unit a `legacy_unit_address` names; None for any other address."""
    if address.startswith("unit[") and address.endswith("]"):
        return address[len("unit[") : -1]
    return None
