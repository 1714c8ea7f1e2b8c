"""Spec sections a resource kind owns, one package each (`sections/<name>/`):

- `schema.json`: the section's JSON Schema fragment (`schema`; `position` orders it among its
  siblings), the kind module that owns it (`owner`) and the least valid data (`minimal`), read
  as data (only tests and `make schema` read it: nothing at run time does):
  `assemble_schema` puts the fragments into the core schema (reconciler/spec/core.schema.json)
  to make the spec's schema (schemas/spec.schema.json, committed for editors and shipped;
  tests/spec/test_sections.py checks it is exactly the assembly; `make schema` writes it);
- `model.py`: where it mounts (`MOUNT`, e.g. ("backup",) or ("runtime", "docker"): the same
  names in the document and in the typed `Spec`), its frozen dataclasses and `build(data)`, the
  validated data -> model conversion (defaults live in these dataclasses only), and, when the
  section owns keys of every profile's gateway config, `GATEWAY_CONFIG_PATHS` (the keys it may
  own) with a `gateway_config()` method on its model (the values it wants);
- `rules.py`: its semantic rules (`RULES`) and duration fields (`DURATIONS`), imported only when a
  spec is checked.

The spec layer finds them here by name and never imports a kind; the kind that plans from a
section names it in its docstring and shows it in its `desired`. Why this shape:
docs/design.md#a-kind-owns-its-section.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconciler.spec.rules import Rule

HERE = Path(__file__).resolve().parent
CORE_SCHEMA = HERE.parent / "core.schema.json"

# Found when the package is imported (it reads the package's own directory), like the kinds.
SECTION_NAMES: tuple[str, ...] = tuple(
    sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg)
)

Durations = tuple[tuple[tuple[str, ...], bool], ...]


ConfigPath = tuple[str, ...]


def model(name: str) -> ModuleType:
    """The section's model module."""
    return importlib.import_module(f"{__name__}.{name}.model")


def mount(name: str) -> tuple[str, ...]:
    """Where the section is, in the document and in the typed Spec."""
    found: tuple[str, ...] = model(name).MOUNT
    return found


def mounted(spec: object) -> Iterator[tuple[str, Any]]:
    """(name, value) of every section the spec holds (an absent section is left out)."""
    for name in SECTION_NAMES:
        value: Any = spec
        for key in mount(name):
            value = getattr(value, key, None)
        if value is not None:
            yield name, value


def gateway_config(spec: object) -> dict[ConfigPath, Any]:
    """The gateway config keys (paths into every profile's config) the spec's sections own,
    with the values they want; a key two sections want is an error."""
    out: dict[ConfigPath, Any] = {}
    for name, value in mounted(spec):
        part: Mapping[ConfigPath, Any] = (
            value.gateway_config() if hasattr(value, "gateway_config") else {}
        )
        for path, wanted in part.items():
            if path in out:
                raise ValueError(
                    f"section {name}: gateway config {'.'.join(path)} is owned already"
                )
            out[path] = wanted
    return out


def gateway_config_paths() -> tuple[ConfigPath, ...]:
    """Every gateway config key a section may own, whatever a spec says (snapshots keep them)."""
    found: list[ConfigPath] = []
    for name in SECTION_NAMES:
        found += getattr(model(name), "GATEWAY_CONFIG_PATHS", ())
    return tuple(found)


def rules() -> tuple[Rule, ...]:
    """Every section's semantic rules, sections in name order."""
    found: list[Rule] = []
    for name in SECTION_NAMES:
        found += importlib.import_module(f"{__name__}.{name}.rules").RULES
    return tuple(found)


def durations() -> Durations:
    """(path, may it be zero?) of every sections' duration field."""
    found: list[tuple[tuple[str, ...], bool]] = []
    for name in SECTION_NAMES:
        found += getattr(importlib.import_module(f"{__name__}.{name}.rules"), "DURATIONS", ())
    return tuple(found)


def fragment(name: str) -> dict[str, Any]:
    """The section's schema.json: {"position", "owner", "minimal", "schema", "$defs"?}."""
    doc: dict[str, Any] = json.loads((HERE / name / "schema.json").read_text(encoding="utf-8"))
    return doc


def assemble_schema() -> dict[str, Any]:
    """The spec's JSON Schema: the core schema with every section's fragment at its mount.

    Fragments go in by `position` (then name), each after the properties already there, so the
    assembled document has one fixed order. A mount taken twice or a `$defs` name given twice is
    an error: one place declares each part of the format.
    """
    root: dict[str, Any] = json.loads(CORE_SCHEMA.read_text(encoding="utf-8"))
    parts = sorted(
        ((fragment(n), n) for n in SECTION_NAMES), key=lambda p: (p[0]["position"], p[1])
    )
    for part, name in parts:
        *parents, key = mount(name)
        node = root
        for parent in parents:
            node = node["properties"][parent]
        if key in node["properties"]:
            raise ValueError(f"section {name}: {'.'.join(mount(name))} is mounted already")
        node["properties"][key] = part["schema"]
        if part.get("required"):
            node.setdefault("required", []).append(key)
        for def_name, definition in part.get("$defs", {}).items():
            if def_name in root["$defs"]:
                raise ValueError(f"section {name}: $defs/{def_name} is defined already")
            root["$defs"][def_name] = definition
    return root


def assembled_text() -> str:
    """The assembled schema as the committed file holds it."""
    return json.dumps(assemble_schema(), indent=2, ensure_ascii=False) + "\n"
