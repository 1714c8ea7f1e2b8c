"""load_spec: a spec file in, a fully defaulted `Spec` out, or `SpecInvalid` with every error.

The steps, each reporting with file:line:column:
1. read at most MAX_BYTES (bigger files fail before parsing), refuse binary and non-UTF-8 data;
2. parse the YAML with positions (yaml_source): syntax errors, duplicate keys, alias bombs, ...;
3. validate against the JSON Schema (schema);
4. run the semantic rules (semantic);
5. only when all of that found nothing: convert to the frozen dataclasses of model.py, whose
   defaults are the one place defaults live in code (the schema repeats them for editors; a test
   keeps the two in step).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.bounded import InputRefused, read_bounded
from reconciler.spec import validation_cache
from reconciler.spec.duration import parse_duration
from reconciler.spec.errors import SpecError, SpecInvalid
from reconciler.spec.limits import MAX_BYTES
from reconciler.spec.model import (
    API_VERSION,
    GatewayRuntime,
    Host,
    Profile,
    Runtime,
    ServeEntry,
    Spec,
    SshAccess,
    Tailscale,
)
from reconciler.spec.schema_file import schema_text
from reconciler.spec.sections.backup import model as backup
from reconciler.spec.sections.docker import model as docker
from reconciler.spec.sections.metrics import model as metrics
from reconciler.spec.sections.reconcile import model as reconcile

if TYPE_CHECKING:
    from reconciler.spec.yaml_source import Document

# SHA-256 digests of spec bytes whose schema check already passed elsewhere: the remote agent
# fills it with the digest the admin machine validated, so the target needs no jsonschema. The
# semantic rules and the conversion still run here.
SCHEMA_CHECKED: set[str] = set()


def load_spec(path: str | Path) -> Spec:
    """Read, validate and convert the spec at `path` (errors name the path as given)."""
    filename = str(path)
    size = 0
    try:
        # Never blocks on a FIFO or device, never reads more than the limit (bounded.py).
        data = read_bounded(path, MAX_BYTES)
    except InputRefused as exc:
        if exc.size is None:
            raise SpecInvalid(
                [SpecError(filename, 0, 0, "", f"cannot read the spec: it {exc.problem}")]
            ) from None
        size, data = exc.size, b""
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SpecInvalid(
            [SpecError(filename, 0, 0, "", f"cannot read the spec: {reason}")]
        ) from None
    if size > MAX_BYTES or len(data) > MAX_BYTES:
        raise SpecInvalid(
            [
                SpecError(
                    filename,
                    0,
                    0,
                    "",
                    f"the file is too large ({max(size, len(data))} bytes or more; "
                    f"a spec may be at most {MAX_BYTES} bytes)",
                )
            ]
        )
    return replace(load_spec_text(data, filename), path=Path(path))


def load_spec_text(data: bytes | str, filename: str) -> Spec:
    """Validate and convert spec text; `filename` is only used in error messages.

    Bytes that passed here before (same code, same schema) are not parsed and checked again:
    their validated data comes from the cache (validation_cache), and only the conversion runs.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    digest = hashlib.sha256(raw).hexdigest()
    stamp = validation_cache.code_stamp()
    key = None if stamp is None else validation_cache.cache_key(raw, schema_text(), stamp)
    directory = validation_cache.cache_dir() if key is not None else None
    known = validation_cache.lookup(key, directory) if key is not None else None
    if known is not None:
        return replace(build(known), sha256=digest)
    schema_checked = digest in SCHEMA_CHECKED
    valid = _validated(raw, filename, schema_checked=schema_checked)
    if key is not None and not schema_checked:  # a pass on another machine's word is not ours
        validation_cache.store(key, directory, valid)
    return replace(build(valid), sha256=digest)


def _validated(raw: bytes, filename: str, *, schema_checked: bool) -> dict[str, Any]:
    """Parse and check the spec: its plain data, or SpecInvalid with every error."""
    # The parser, jsonschema and the rules are imported only when a spec is not in the cache.
    from reconciler.spec.yaml_source import decode, parse

    text = decode(raw, filename)
    if isinstance(text, SpecError):
        raise SpecInvalid([text])
    doc, errors = parse(text, filename)
    if doc is None:
        raise SpecInvalid(errors)
    if not isinstance(doc.data, dict):
        line, col = doc.locate(())
        kind = "a list" if isinstance(doc.data, list) else "a single value"
        raise SpecInvalid(
            [
                *errors,
                SpecError(
                    filename,
                    line,
                    col,
                    "",
                    f"the spec must be a mapping of fields, not {kind}",
                    "a spec starts with apiVersion: reconciler/v1, then host:, profiles:, ...",
                ),
            ]
        )
    errors += _validate(doc, filename, schema_checked=schema_checked)
    if errors:
        raise SpecInvalid(list(dict.fromkeys(errors)))
    return doc.data


def validate_document(doc: Document, filename: str) -> list[SpecError]:
    """Every schema and semantic error of an already parsed spec document (a fleet file's
    merged host, whose positions point into the fleet file: spec/fleet.py)."""
    return _validate(doc, filename)


def _validate(doc: Document, filename: str, *, schema_checked: bool = False) -> list[SpecError]:
    """Schema errors, plus semantic issues about places the schema found nothing wrong with."""
    from reconciler.spec import schema, semantic
    from reconciler.spec.yaml_source import field_path

    errors, bad_paths = ([], set()) if schema_checked else schema.validate(doc, filename)
    bad_paths |= doc.broken
    for issue in semantic.check(doc):
        if any(issue.path[: len(bad)] == bad for bad in bad_paths):
            continue
        line, col = doc.locate(issue.path, key=issue.at_key)
        errors.append(
            SpecError(filename, line, col, field_path(issue.path), issue.message, issue.hint)
        )
    return errors


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
        host=_host(data["host"]),
        runtime=_runtime(data.get("runtime", {}), product),
        profiles=tuple(_profile(name, body) for name, body in sorted(data["profiles"].items())),
        tailscale=_tailscale(data["tailscale"]) if "tailscale" in data else None,
        reconcile=reconcile.build(data.get("reconcile", {})),
        metrics=metrics.build(data["metrics"]) if "metrics" in data else None,
        backup=backup.build(data["backup"]) if "backup" in data else None,
        **_some(data, "product", "linger", "prune_units"),
        api_version=data.get("apiVersion", API_VERSION),
    )


def _host(section: dict[str, Any]) -> Host:
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
        node=section.get("node"),
        gateway=GatewayRuntime(**gateway),
        docker=docker.build(section.get("docker")),
    )


def _tailscale(section: dict[str, Any]) -> Tailscale:
    serve = tuple(
        ServeEntry(https=int(entry["https"]), **_some(entry, "profile", "target", "funnel"))
        for entry in section.get("serve", [])
    )
    return Tailscale(serve=serve, **_some(section, "operator", "funnel", "prune"))


def _profile(name: str, body: dict[str, Any]) -> Profile:
    return Profile(
        name=name,
        port=int(body["port"]),
        **_some(body, "state_dir", "workspace", "bind", "auth", "prune", "gateway_version"),
    )
