"""Checks every test applies to a plan document: the JSON Schema, and no secret in any output."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schemas" / "plan.schema.json"


@cache
def plan_validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def assert_valid_plan(document: Any) -> None:
    """The document matches schemas/plan.schema.json (every error listed when not)."""
    if isinstance(document, str):
        document = json.loads(document)
    errors = sorted(plan_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors[:10]
    )
