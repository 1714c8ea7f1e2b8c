"""The desired state a spec resolves to, and what changes between two versions of a spec.

A pull request changes YAML; a reviewer needs the consequences: which ports, unit names, state
paths, serve targets and environment change. `desired_state` resolves a Spec into those
concrete values with the same functions the kinds plan with (profile paths, product names,
serve targets, owned config keys), for a home directory given as a placeholder (`~user`): no
host is read. `desired_changes` compares two such documents leaf by leaf.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.core.action import AttributeChange
from reconciler.core.diff import attribute_changes
from reconciler.core.host import Account, HostContext, RecordedLookups
from reconciler.gateway.paths import expand, names, profile_paths, unit_dir
from reconciler.kinds.gateway_config import owned_values
from reconciler.kinds.reconcile_timer import SERVICE_UNIT, TIMER_UNIT
from reconciler.kinds.serve import desired_serves
from reconciler.spec.duration import format_duration
from reconciler.spec.model import Profile, Spec


def home_placeholder(spec: Spec) -> Path:
    """`~user`: the spec user's home on whatever host applies it."""
    return Path(f"~{spec.host.user}")


def _placeholder_host(spec: Spec, home: Path) -> HostContext:
    # Only the user's home matters to path resolution; nothing is looked up on this machine.
    user = Account(spec.host.user, -1, -1, home)
    return HostContext(
        hostname=spec.host.name,
        invoker=user,
        user=user,
        user_name=spec.host.user,
        recorded=RecordedLookups(),
    )


def desired_state(spec: Spec, home: Path | None = None) -> dict[str, Any]:
    """Everything the spec asks of a host, resolved to concrete values (pure)."""
    home = home if home is not None else home_placeholder(spec)
    host = _placeholder_host(spec, home)
    table = names(spec)
    doc: dict[str, Any] = {
        "host": {"name": spec.host.name, "user": spec.host.user, "home": str(home)},
        "product": spec.product,
        "linger": spec.linger,
        "runtime": {
            "node": spec.runtime.node,
            "gateway": {
                "package": spec.runtime.gateway.package,
                "version": spec.runtime.gateway.version,
                "command": spec.runtime.gateway.command or table.command,
                "start_timeout": format_duration(int(spec.runtime.gateway.start_timeout_s)),
            },
            "docker": spec.runtime.docker,
        },
        "tailscale": None,
        "profiles": {p.name: _profile(spec, p, host) for p in spec.profiles},
        "prune_units": spec.prune_units,
        "reconcile": _reconcile(spec, host, home),
    }
    if spec.tailscale is not None:
        doc["tailscale"] = {
            "operator": spec.tailscale.operator,
            "funnel": spec.tailscale.funnel,
            "prune": spec.tailscale.prune,
            "serve": {
                str(entry.port): {
                    "target": entry.target,
                    "funnel": entry.funnel,
                    "from": entry.source,
                }
                for entry in desired_serves(spec)
            },
        }
    return doc


def _profile(spec: Spec, profile: Profile, host: HostContext) -> dict[str, Any]:
    paths = profile_paths(spec, profile, host)
    table = names(spec)
    environment = {
        table.env("PROFILE"): profile.name,
        table.env("STATE_DIR"): str(paths.state),
        table.env("CONFIG_PATH"): str(paths.config),
        table.env("GATEWAY_PORT"): str(profile.port),
    }
    return {
        "port": profile.port,
        "bind": profile.bind,
        "auth": profile.auth,
        "prune": profile.prune,
        "unit": paths.unit,
        "unit_file": str(paths.unit_file),
        "exec_start": f"{spec.runtime.gateway.command or table.command} gateway --port {profile.port}",
        "environment": environment,
        "environment_file": str(paths.token_env) if profile.auth == "token" else None,
        "state_dir": str(paths.state),
        "credentials_dir": str(paths.credentials),
        "workspace": str(paths.workspace),
        "config_file": str(paths.config),
        "config": {".".join(key): value for key, value in owned_values(profile).items()},
        "serve_target": f"http://127.0.0.1:{profile.port}",
    }


def _reconcile(spec: Spec, host: HostContext, home: Path) -> dict[str, Any]:
    timer = spec.reconcile.timer
    source = spec.reconcile.source
    return {
        "timer": {
            "enabled": timer.enabled,
            "interval": format_duration(timer.interval_s),
            "on_boot": format_duration(timer.on_boot_s),
            "randomized_delay": format_duration(timer.randomized_delay_s),
            "unit_files": {
                "service": str(unit_dir(host) / SERVICE_UNIT),
                "timer": str(unit_dir(host) / TIMER_UNIT),
            }
            if timer.enabled
            else None,
        },
        "source": None
        if source is None
        else {"git": str(expand(source.path, home)), "ref": source.ref},
    }


def flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> {dotted.path: leaf}; lists and empty mappings are leaves.

    A null (not set, left alone) is left out: turning a section on then reads as its values
    added, not as `null` removed and a subtree added.
    """
    out: dict[str, Any] = {}
    for key, value in doc.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if value is None:
            continue
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


def desired_changes(old: Spec, new: Spec, home: Path | None = None) -> tuple[AttributeChange, ...]:
    """What changes in the desired state from `old` to `new`, one change per concrete value."""
    placeholder = home if home is not None else home_placeholder(new)
    before = flatten(desired_state(old, home if home is not None else home_placeholder(old)))
    after = flatten(desired_state(new, placeholder))
    return attribute_changes(after, before)
