"""The JSON Schema file: valid 2020-12, usable by editors, in step with the code."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from reconciler.cli import cli
from reconciler.spec import duration
from reconciler.spec.schema import PATTERN_MESSAGES, SEMANTIC_DEFS, pattern, schema, schema_text

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "schemas" / "spec.schema.json"


def _objects(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every subschema, with a JSON-pointer-ish location."""
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from _objects(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _objects(value, f"{where}/{i}")


def test_schema_is_valid_draft_2020_12() -> None:
    root = schema()
    Draft202012Validator.check_schema(root)
    assert root["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert root["$id"].endswith("spec.schema.json")
    assert root["title"] and root["description"]


def test_schema_text_is_the_file_and_the_package_symlink() -> None:
    assert schema_text() == SCHEMA_FILE.read_text(encoding="utf-8")
    assert (ROOT / "reconciler" / "schemas" / "spec.schema.json").read_text() == schema_text()
    assert schema() == json.loads(schema_text())
    assert schema() is not schema()  # callers get their own copy


def test_cli_schema_prints_it() -> None:
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == schema()


def test_every_property_has_a_description() -> None:
    missing = [
        f"{where}/properties/{name}"
        for where, node in _objects(schema())
        if isinstance(node.get("properties"), dict)
        for name, prop in node["properties"].items()
        if not prop.get("description")
    ]
    assert missing == []


def test_every_object_is_closed() -> None:
    open_objects = [
        where
        for where, node in _objects(schema())
        if node.get("type") == "object" and "additionalProperties" not in node
    ]
    assert open_objects == []


def test_defaults_validate_against_their_property() -> None:
    root = schema()
    for where, node in _objects(root):
        if "default" in node and isinstance(node.get("description"), str):
            sub = {"$defs": root["$defs"], **{k: v for k, v in node.items() if k != "default"}}
            errors = list(Draft202012Validator(sub).iter_errors(node["default"]))
            assert errors == [], where


def test_duration_pattern_is_the_codes() -> None:
    assert pattern("duration") == duration.PATTERN


def test_patterns_named_in_code_exist() -> None:
    defs = schema()["$defs"]
    for name in (*SEMANTIC_DEFS, *PATTERN_MESSAGES):
        assert "pattern" in defs[name], name
        re.compile(defs[name]["pattern"])


@pytest.mark.parametrize("path", sorted((ROOT / "specs").glob("*.yaml")), ids=lambda p: p.name)
def test_specs_pass_a_plain_jsonschema_check(path: Path) -> None:
    """What check-jsonschema or an editor does: plain YAML load, then the schema alone."""
    Draft202012Validator(schema()).validate(yaml.safe_load(path.read_text()))
