"""docs/spec-reference.md cannot drift from schemas/spec.schema.json.

The reference is written by hand (it explains more than the schema's one-line descriptions), so
this test reads its field tables (`| field | type | default | meaning |`) and compares them with
the schema: every field of the schema is documented, every documented field exists, and the
defaults, required fields and allowed values agree.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO / "schemas" / "spec.schema.json"
REFERENCE_PATH = REPO / "docs" / "spec-reference.md"


@dataclass(frozen=True)
class SchemaField:
    """One property of the schema, `$ref`s resolved, at its documented path."""

    path: str
    node: dict[str, Any]
    required: bool
    has_children: bool


@dataclass(frozen=True)
class DocumentedField:
    """One row of a field table in the reference."""

    path: str
    type_cell: str
    default_cell: str
    line: int


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The node merged with what its `$ref` (recursively) says; the node's own keys win."""
    ref = node.get("$ref")
    if not ref:
        return node
    target = _resolve(defs[ref.removeprefix("#/$defs/")], defs)
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def _children(node: dict[str, Any], defs: dict[str, Any]) -> list[tuple[str, dict[str, Any], bool]]:
    """(path suffix, child node, required) for a resolved node's nested fields."""
    out: list[tuple[str, dict[str, Any], bool]] = []
    required = set(node.get("required", []))
    for name, child in node.get("properties", {}).items():
        out.append((f".{name}", child, name in required))
    for alternative in (*node.get("anyOf", ()), *node.get("oneOf", ())):
        # A field written in one of several shapes (runtime.docker: a word, or a mapping):
        # the mapping's fields are documented like any other.
        if "properties" in alternative:
            out += _children(_resolve(alternative, defs), defs)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):  # a mapping keyed by name (profiles)
        resolved = _resolve(extra, defs)
        for suffix, child, req in _children(resolved, defs):
            out.append((f".<name>{suffix}", child, req))
    items = node.get("items")
    if isinstance(items, dict):  # a list of entries (tailscale.serve)
        resolved = _resolve(items, defs)
        for suffix, child, req in _children(resolved, defs):
            out.append((f"[N]{suffix}", child, req))
    return out


def schema_fields() -> dict[str, SchemaField]:
    """Every field of the spec schema by its documented path (`profiles.<name>.port`)."""
    schema = json.loads(SCHEMA_PATH.read_text())
    defs = schema["$defs"]
    fields: dict[str, SchemaField] = {}

    def walk(prefix: str, node: dict[str, Any]) -> None:
        for suffix, child, required in _children(node, defs):
            path = (prefix + suffix).lstrip(".")
            resolved = _resolve(child, defs)
            nested = _children(resolved, defs)
            fields[path] = SchemaField(path, resolved, required, bool(nested))
            walk(path, resolved)

    walk("", schema)
    return fields


_ROW = re.compile(r"^\| `(?P<path>[^`]+)` \| (?P<type>.*?) \| (?P<default>.*?) \| .* \|$")


def documented_fields() -> list[DocumentedField]:
    """The rows of every `| field | type | default | meaning |` table in the reference."""
    rows: list[DocumentedField] = []
    in_table = False
    for number, line in enumerate(REFERENCE_PATH.read_text().splitlines(), start=1):
        if line.startswith("| field | type | default | meaning |"):
            in_table = True
            continue
        if not line.startswith("|"):
            in_table = False
            continue
        match = _ROW.match(line.replace("\\|", "\u2502"))
        if in_table and match:
            rows.append(
                DocumentedField(
                    path=match["path"],
                    type_cell=match["type"].replace("\u2502", "|"),
                    default_cell=match["default"].replace("\u2502", "|"),
                    line=number,
                )
            )
    return rows


def _literal(value: object) -> str:
    """A schema default as the reference writes it: `120s`, `true`, `null`, `[]`, `{}`."""
    if isinstance(value, str):
        return f"`{value}`"
    return f"`{json.dumps(value)}`"


def test_the_reference_has_field_tables() -> None:
    assert len(documented_fields()) >= 30


def test_every_documented_field_is_in_the_schema() -> None:
    fields = schema_fields()
    unknown = [
        f"docs/spec-reference.md:{row.line}: `{row.path}`"
        for row in documented_fields()
        if row.path not in fields
    ]
    assert unknown == [], "documented but not in schemas/spec.schema.json"


def test_every_schema_field_is_documented() -> None:
    documented = {row.path for row in documented_fields()}
    missing = [
        path
        for path, field in schema_fields().items()
        if not field.has_children and path not in documented
    ]
    assert missing == [], "in schemas/spec.schema.json but not in docs/spec-reference.md"


def test_each_field_is_documented_once() -> None:
    paths = [row.path for row in documented_fields()]
    assert sorted({p for p in paths if paths.count(p) > 1}) == []


@pytest.mark.parametrize("row", documented_fields(), ids=lambda row: row.path)
def test_default_required_and_choices_agree(row: DocumentedField) -> None:
    field = schema_fields().get(row.path)
    if field is None:
        pytest.skip("unknown field: reported by test_every_documented_field_is_in_the_schema")
    where = f"docs/spec-reference.md:{row.line}: `{row.path}`"
    if "default" in field.node:
        assert row.default_cell == _literal(field.node["default"]), where
    elif field.required:
        assert row.default_cell.startswith("required"), where
    else:
        # no schema default: the reference says in words what absence means, never a literal
        assert not row.default_cell.startswith("`"), where
        assert not row.default_cell.startswith("required"), where
    if "default" in field.node or not field.required:
        assert not row.default_cell.startswith("required"), where
    choices = field.node.get("enum") or ([field.node["const"]] if "const" in field.node else None)
    if choices is not None:
        shown = re.findall(r"`([^`]+)`", row.type_cell)
        assert shown == [str(c) for c in choices], where


# --- issue 22: specs/example-full.yaml really uses every field (the docs say it does) --------------

EXAMPLE_PATH = REPO / "specs" / "example-full.yaml"


def _used_paths(data: object, prefix: str = "", *, named: bool = False) -> set[str]:
    """Every path the example sets, written as schema_fields() writes them."""
    out: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            here = f"{prefix}.<name>" if named else f"{prefix}.{key}"
            out.add(here.lstrip("."))
            out |= _used_paths(value, here, named=here.lstrip(".") in _NAMED)
    elif isinstance(data, list):
        for item in data:
            if isinstance(item, dict):
                out |= _used_paths(item, f"{prefix}[N]")
    return out


# Mappings keyed by a name the user chooses (the schema's additionalProperties).
_NAMED = {"profiles"}


def test_example_full_uses_every_schema_field() -> None:
    import yaml

    text = EXAMPLE_PATH.read_text()
    used = _used_paths(yaml.safe_load(text))
    # A field that cannot go with the others is shown as `#alt KEY: value`, in place.
    alternatives = yaml.safe_load(text.replace("#alt ", ""))
    used |= _used_paths(alternatives)
    unused = sorted(set(schema_fields()) - used)
    assert unused == [], (
        "specs/example-full.yaml says it uses every field, but does not set these "
        "(add them, with a comment):\n" + "\n".join(unused)
    )
