"""A fleet file: many hosts in one YAML, with shared `defaults` deep-merged under each entry.

    apiVersion: reconciler/v1
    defaults:                  # any spec fields, shared by every host
      product: clawdbot
      linger: true
      profiles: {personal: {port: 18789}}
    hosts:
      vm102:                   # the entry's name
        host: {name: vm102, user: user, ssh: {address: vm102, user: admin}}
      vm103:
        host: {name: vm103, user: user, ssh: {address: vm103, user: admin}}
        profiles: {ops: {port: 18809}}   # merged into the defaults' profiles

Merging: mappings merge key by key, recursively; anything else (a list, a value) in an entry
replaces the default. Each merged host is validated as a spec is, and every error names the
fleet file, the line and column where the offending value is written (under `defaults` or
under the host's entry), and the field. A file is a fleet file when it has `hosts` and no
`host` at the top; a spec stays a spec.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.frozen import frozen
from reconciler.spec.errors import SpecError, SpecInvalid

if TYPE_CHECKING:
    from reconciler.spec.yaml_source import Document, PathT

TOP_LEVEL = ("apiVersion", "defaults", "hosts")


@frozen
class FleetHost:
    """One host of a fleet file: its entry's name and its merged spec, as YAML text."""

    name: str
    text: str


def is_fleet(data: bytes) -> bool:
    """Pure, cheap: does this YAML look like a fleet file (a top-level `hosts:`, no `host:`)?"""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    # Top-level keys start in the first column (block or flow style after the colon).
    lines = [line.split("#", 1)[0] for line in text.splitlines()]
    return any(line.startswith("hosts:") for line in lines) and not any(
        line.startswith("host:") for line in lines
    )


def merge(base: Any, over: Any) -> Any:
    """Pure: `over` deep-merged onto `base` (mappings key by key; anything else replaced)."""
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = merge(base[key], value) if key in base else value
        return merged
    return over


def _sources(
    base: Any, over: Any, path: PathT, base_at: PathT, over_at: PathT
) -> dict[PathT, PathT]:
    """Where each path of merge(base, over) is written in the fleet document."""
    out: dict[PathT, PathT] = {}

    def walk(value: Any, here: PathT, at: PathT) -> None:
        out[here] = at
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, (*here, key), (*at, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, (*here, index), (*at, index))

    if isinstance(base, dict) and isinstance(over, dict):
        out[path] = over_at
        for key in {**base, **over}:
            if key in over and key in base:
                out |= _sources(
                    base[key], over[key], (*path, key), (*base_at, key), (*over_at, key)
                )
            elif key in over:
                walk(over[key], (*path, key), (*over_at, key))
            else:
                walk(base[key], (*path, key), (*base_at, key))
        return out
    walk(over, path, over_at)
    return out


def _error(
    filename: str, doc: Document, at: PathT, message: str, hint: str | None = None
) -> SpecError:
    from reconciler.spec.yaml_source import field_path

    line, col = doc.locate(at, key=True)
    return SpecError(filename, line, col, field_path(at), message, hint)


def load_fleet(data: bytes, filename: str) -> list[FleetHost]:
    """Parse, merge and validate a fleet file: every host's spec text, or SpecInvalid with every
    error of every host (file:line:col into the fleet file)."""
    # PyYAML and the positions parser only here: every `plan` asks is_fleet, and a cached spec
    # is never parsed (about 90 M instructions of imports, a tenth of a timer's plan).
    import yaml

    from reconciler.spec.checking import validate_document
    from reconciler.spec.yaml_source import Document, read_document

    doc, errors = read_document(data, filename)
    fleet = doc.data
    hint = "a fleet file has apiVersion, defaults (optional) and hosts: {NAME: {spec fields}}"
    if not isinstance(fleet, dict):
        raise SpecInvalid([_error(filename, doc, (), "a fleet file must be a mapping", hint)])
    for key in fleet:
        if key not in TOP_LEVEL:
            errors.append(_error(filename, doc, (key,), f"unknown fleet field {key!r}", hint))
    defaults = fleet.get("defaults", {})
    if not isinstance(defaults, dict):
        errors.append(_error(filename, doc, ("defaults",), "must be a mapping of spec fields"))
        defaults = {}
    hosts = fleet.get("hosts")
    if not isinstance(hosts, dict) or not hosts:
        errors.append(
            _error(filename, doc, ("hosts",), "must map each host's name to its fields", hint)
        )
        hosts = {}
    base = {**({"apiVersion": fleet["apiVersion"]} if "apiVersion" in fleet else {}), **defaults}
    base_at: dict[PathT, PathT] = (
        {("apiVersion",): ("apiVersion",)} if "apiVersion" in fleet else {}
    )
    # The lines written under `defaults`: an error there is shared by every host.
    defaults_lines = {
        loc.line for p, loc in doc.locs.items() if p[:1] == ("defaults",) and len(p) > 1
    } | {loc.key_line for p, loc in doc.locs.items() if p[:1] == ("defaults",) and len(p) > 1}
    out = []
    for name, entry in hosts.items():
        if not isinstance(entry, dict):
            errors.append(
                _error(filename, doc, ("hosts", name), "must be a mapping of spec fields")
            )
            continue
        merged = merge(base, entry)
        sources = _sources(defaults, entry, (), ("defaults",), ("hosts", name))
        sources |= {p: a for p, a in base_at.items() if p[0] not in entry}
        sources[()] = ("hosts", name)
        host_doc = Document(
            merged,
            locs={p: doc.locs[a] for p, a in sources.items() if a in doc.locs},
            plain={p: doc.plain[a] for p, a in sources.items() if a in doc.plain},
            bool_word_keys={
                p: doc.bool_word_keys[a] for p, a in sources.items() if a in doc.bool_word_keys
            },
            broken={p for p, a in sources.items() if a in doc.broken},
        )
        for problem in validate_document(host_doc, filename):
            shared = problem.line in defaults_lines
            errors.append(
                SpecError(
                    problem.file,
                    problem.line,
                    problem.column,
                    f"hosts.{name}" + (f".{problem.field}" if problem.field else ""),
                    problem.message + (" (from defaults)" if shared else ""),
                    problem.hint,
                )
            )
        out.append(FleetHost(str(name), yaml.safe_dump(merged, sort_keys=False)))
    if errors:
        raise SpecInvalid(list(dict.fromkeys(errors)))
    return out


__all__ = ["FleetHost", "is_fleet", "load_fleet", "merge"]
