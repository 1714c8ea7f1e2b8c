"""reconciler/spec/schema_validator.py against jsonschema, its oracle.

The spec check uses its own validator (jsonschema's import cost more than the rest of
`validate`); these tests hold it to jsonschema's Draft 2020-12 results: the same errors (keyword,
keyword value, instance, schema object, path) for every spec of the corpus and for documents
made by breaking valid specs at random places. oneOf is left out on both sides (schema.py drops
its errors: a semantic rule says it better).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from reconciler.spec.schema import schema
from reconciler.spec.schema_validator import ANNOTATIONS, IGNORED, SUPPORTED, Validator
from reconciler.spec.yaml_source import decode, parse

SPECS = Path(__file__).resolve().parents[1] / "data" / "specs"
REPO_SPECS = Path(__file__).resolve().parents[2] / "specs"
CORPUS = sorted([*SPECS.glob("*/*.yaml"), *REPO_SPECS.glob("*.yaml")])
ORACLE = Draft202012Validator(schema())
OURS = Validator(schema())


def _key(validator: str, value: Any, instance: Any, where: Any, path: Any) -> str:
    return json.dumps(
        [validator, value, repr(instance), where, list(path)], sort_keys=True, default=repr
    )


def oracle_errors(doc: Any) -> list[str]:
    return sorted(
        _key(e.validator, e.validator_value, e.instance, e.schema, e.absolute_path)
        for e in ORACLE.iter_errors(doc)
        if e.validator not in IGNORED
    )


def our_errors(doc: Any) -> list[str]:
    return sorted(
        _key(e.validator, e.validator_value, e.instance, e.schema, e.absolute_path)
        for e in OURS.iter_errors(doc)
    )


def _data(path: Path) -> Any:
    text = decode(path.read_bytes(), path.name)
    if not isinstance(text, str):
        return None
    doc, _ = parse(text, path.name)
    return None if doc is None else doc.data


def _keywords(node: Any, found: set[str]) -> set[str]:
    """The keywords of every schema object in `node`, descending only where schemas are."""
    if not isinstance(node, dict):
        return found
    found |= set(node)
    for keyword in ("properties", "$defs"):
        for sub in node.get(keyword, {}).values():
            _keywords(sub, found)
    for keyword in ("additionalProperties", "items", "propertyNames"):
        _keywords(node.get(keyword), found)
    for keyword in ("prefixItems", "oneOf", "anyOf"):
        for sub in node.get(keyword, []):
            _keywords(sub, found)
    return found


def test_every_keyword_of_the_schema_is_checked() -> None:
    used = _keywords(schema(), set())
    assert used - ANNOTATIONS - IGNORED <= SUPPORTED, used - ANNOTATIONS - IGNORED - SUPPORTED
    assert "type" in used and "$ref" in used  # the walk found the schema's keywords at all


def test_an_unknown_keyword_is_refused_not_ignored() -> None:
    with pytest.raises(ValueError, match="patternProperties"):
        list(Validator({"patternProperties": {"^x": {}}}).iter_errors({}))


# The specs the YAML reader can read (the others never reach the schema).
READABLE = [p for p in CORPUS if _data(p) is not None]


@pytest.mark.parametrize("path", READABLE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_corpus_gets_jsonschemas_errors(path: Path) -> None:
    data = _data(path)
    assert our_errors(data) == oracle_errors(data)


def test_the_corpus_has_schema_errors_to_compare() -> None:
    # Guards the comparison above against a corpus the schema never complains about.
    failing = [p for p in READABLE if oracle_errors(_data(p))]
    assert len(failing) >= 20


VALID = [d for d in map(_data, sorted(SPECS.glob("valid/*.yaml"))) if isinstance(d, dict)]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 70000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "x", "ops", "~/a", "/abs", "1.2.3", "5m", "-", "a b", "2026.1.24-3"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def broken_specs(draw: st.DrawFn) -> Any:
    doc = copy.deepcopy(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        if not path:
            continue
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(json_values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["port", "extra", "user", "ssh", "x"]))] = draw(json_values)
        else:
            parent.append(draw(json_values))
    return doc


@given(broken_specs())
def test_broken_specs_get_jsonschemas_errors(doc: Any) -> None:
    assert our_errors(doc) == oracle_errors(doc)
