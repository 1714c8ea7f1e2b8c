"""load_spec: a spec file in, a fully defaulted `Spec` out, or `SpecInvalid` with every error.

The steps, each reporting with file:line:column:
1. read at most MAX_BYTES (bigger files fail before parsing), refuse binary and non-UTF-8 data;
2. parse the YAML with positions (yaml_source): syntax errors, duplicate keys, alias bombs, ...;
3. validate against the JSON Schema (schema);
4. run the semantic rules (semantic);
   (steps 1-4 are checking.py's, which `validate` uses alone)
5. only when all of that found nothing: convert to the frozen dataclasses of model.py, whose
   defaults are the one place defaults live in code (the schema repeats them for editors; a test
   keeps the two in step).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from reconciler.spec.checking import SCHEMA_CHECKED as SCHEMA_CHECKED  # the agent fills it
from reconciler.spec.checking import checked_data, read_spec_bytes
from reconciler.spec.checking import validate_document as validate_document  # fleet.py's
from reconciler.spec.duration import parse_duration
from reconciler.spec.model import (
    API_VERSION,
    GatewayRuntime,
    Host,
    Profile,
    Runtime,
    Spec,
    SshAccess,
)
from reconciler.spec.sections.backup import model as backup
from reconciler.spec.sections.docker import model as docker
from reconciler.spec.sections.linger import model as linger
from reconciler.spec.sections.metrics import model as metrics
from reconciler.spec.sections.node import model as node
from reconciler.spec.sections.prune_units import model as prune_units
from reconciler.spec.sections.reconcile import model as reconcile
from reconciler.spec.sections.tailscale import model as tailscale


def load_spec(path: str | Path) -> Spec:
    """Read, validate and convert the spec at `path` (errors name the path as given)."""
    return replace(load_spec_text(read_spec_bytes(path), str(path)), path=Path(path))


def load_spec_text(data: bytes | str, filename: str) -> Spec:
    """Validate and convert spec text; `filename` is only used in error messages."""
    digest, valid = checked_data(data, filename)
    return replace(build(valid), sha256=digest)


# --- conversion: validated plain data -> model -------------------------------------------------


def _some(section: dict[str, Any], *names: str) -> dict[str, Any]:
    """The fields of `section` that are present: absent ones keep the dataclass defaults."""
    return {name: section[name] for name in names if name in section}


def _seconds(value: str | float) -> int:
    return parse_duration(value) if isinstance(value, str) else int(value)


def build(data: dict[str, Any]) -> Spec:
    """Validated data -> Spec. Defaults are the dataclasses' (model.py), never repeated here."""
    product = data.get("product", "clawdbot")
    return Spec(
        host=build_host(data["host"]),
        runtime=_runtime(data.get("runtime", {}), product),
        profiles=tuple(_profile(name, body) for name, body in sorted(data["profiles"].items())),
        linger=linger.build(data["linger"]) if "linger" in data else linger.DEFAULT,
        tailscale=tailscale.build(data["tailscale"]) if "tailscale" in data else None,
        prune_units=(
            prune_units.build(data["prune_units"]) if "prune_units" in data else prune_units.DEFAULT
        ),
        reconcile=reconcile.build(data.get("reconcile", {})),
        metrics=metrics.build(data["metrics"]) if "metrics" in data else None,
        backup=backup.build(data["backup"]) if "backup" in data else None,
        **_some(data, "product"),
        api_version=data.get("apiVersion", API_VERSION),
    )


def build_host(section: dict[str, Any]) -> Host:
    """The `host` section -> Host (also used, on unvalidated data, to find a remote host early:
    app/remote.py early_connection, which treats any exception as "cannot tell")."""
    ssh = section.get("ssh")
    return Host(
        name=section["name"],
        user=section["user"],
        ssh=SshAccess(**_some(ssh, "address", "user", "port", "python")) if ssh else None,
        data_roots=tuple(section.get("data_roots", ())),
    )


def _runtime(section: dict[str, Any], product: str) -> Runtime:
    gateway = dict(section.get("gateway", {}))
    gateway.setdefault("package", product)
    if "start_timeout" in gateway:
        gateway["start_timeout_s"] = float(_seconds(gateway.pop("start_timeout")))
    if "health_window" in gateway:
        gateway["health_window_s"] = float(_seconds(gateway.pop("health_window")))
    for table in ("overrides", "extra"):
        if table in gateway:
            gateway[table] = tuple(sorted(gateway[table].items()))
    return Runtime(
        node=node.build(section.get("node")),
        gateway=GatewayRuntime(**gateway),
        docker=docker.build(section.get("docker")),
    )


def _profile(name: str, body: dict[str, Any]) -> Profile:
    return Profile(
        name=name,
        port=int(body["port"]),
        **_some(body, "state_dir", "workspace", "bind", "auth", "prune", "gateway_version", "node"),
    )
