"""A JSON Schema (draft 2020-12) validator for the keywords schemas/spec.schema.json uses.

Why not jsonschema: importing it (referencing, attrs, the metaschemas of six drafts) cost about
45 ms of the 146 ms of `reconciler validate` and of every plan of a spec not in the spec cache,
to check a 27 kB schema that uses a dozen keywords. This module checks exactly those keywords,
with jsonschema's semantics (types, equality where true is not 1, `pattern` as a search,
`items` after `prefixItems`, `$ref` beside other keywords, `propertyNames` errors at the
object's path) and errors shaped like jsonschema's (`validator`, `validator_value`,
`instance`, `schema`, `absolute_path`, `message`), so reconciler/spec/schema.py words them
the same way. jsonschema stays the tests' oracle: tests/spec/test_schema_validator.py compares
the two on the spec corpus and on generated documents, and fails when the schema starts using
a keyword this module does not know.

`anyOf` (a field written in one of several shapes, runtime.docker) keeps each alternative's
errors in `context`, so schema.py can word those of the shape the value has.

Not implemented, on purpose: `oneOf` (its only use, a serve entry's profile-or-target, is a
semantic rule with a better message; schema.py drops jsonschema's oneOf errors).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from reconciler.frozen import frozen

#: keywords that only describe (no check)
ANNOTATIONS = frozenset(
    {"$schema", "$id", "$defs", "title", "description", "default", "examples", "$comment"}
)
#: keywords whose check schema.py ignores, so they are not checked here
IGNORED = frozenset({"oneOf"})

Path = tuple[str | int, ...]


@frozen
class SchemaError:
    """One failed keyword: like jsonschema's ValidationError, for the fields schema.py reads."""

    validator: str  # the keyword
    validator_value: Any  # its value in the schema
    instance: Any  # the value that failed
    schema: dict[str, Any]  # the schema object holding the keyword
    absolute_path: Path  # where the instance is in the document
    message: str
    # anyOf: the errors of each alternative, with its index (jsonschema's `context`)
    context: tuple[tuple[int, SchemaError], ...] = ()


def _is_type(value: Any, name: str) -> bool:
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "string":
        return isinstance(value, str)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if isinstance(value, bool):  # true is not a number in JSON Schema
        return False
    if name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if name == "number":
        return isinstance(value, int | float)
    raise ValueError(f"unknown JSON Schema type {name!r}")


def _equal(one: Any, two: Any) -> bool:
    """JSON equality: true is not 1, and containers compare element by element."""
    if isinstance(one, str) or isinstance(two, str):
        return bool(one == two)
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(map(_equal, one, two))
    if isinstance(one, dict) and isinstance(two, dict):
        return one.keys() == two.keys() and all(_equal(one[k], two[k]) for k in one)
    if isinstance(one, bool) or isinstance(two, bool):
        return type(one) is type(two) and one == two
    return bool(one == two)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class Validator:
    """Checks documents against one schema (its `$ref`s point into its own `$defs`)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.root = schema
        self._patterns: dict[str, re.Pattern[str]] = {}

    def iter_errors(self, instance: Any) -> Iterator[SchemaError]:
        """Every keyword `instance` fails, as jsonschema's iter_errors finds them."""
        return self._check(instance, self.root, ())

    def _resolve(self, ref: str) -> dict[str, Any]:
        if not ref.startswith("#/"):
            raise ValueError(f"only local $refs are supported, not {ref!r}")
        node: Any = self.root
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        resolved: dict[str, Any] = node
        return resolved

    def _search(self, pattern: str, text: str) -> bool:
        compiled = self._patterns.get(pattern)
        if compiled is None:
            compiled = self._patterns[pattern] = re.compile(pattern)
        return compiled.search(text) is not None

    def _check(self, value: Any, schema: dict[str, Any], path: Path) -> Iterator[SchemaError]:
        for keyword, expected in schema.items():
            if keyword in ANNOTATIONS or keyword in IGNORED:
                continue
            check = _KEYWORDS.get(keyword)
            if check is None:
                raise ValueError(f"JSON Schema keyword {keyword!r} is not supported here")
            for message in check(self, value, expected, schema, path):
                if isinstance(message, SchemaError):
                    yield message
                else:
                    yield SchemaError(keyword, expected, value, schema, path, message)


# Each keyword: (validator, instance, keyword value, schema, path) -> messages of its own
# failures (str) and the errors of the subschemas it applies (SchemaError).
Found = Iterator[str | SchemaError]


def _type(v: Validator, value: Any, expected: Any, schema: dict[str, Any], path: Path) -> Found:
    types = [expected] if isinstance(expected, str) else expected
    if not any(_is_type(value, t) for t in types):
        yield f"{value!r} is not of type {', '.join(repr(t) for t in types)}"


def _ref(v: Validator, value: Any, ref: str, schema: dict[str, Any], path: Path) -> Found:
    yield from v._check(value, v._resolve(ref), path)


def _enum(v: Validator, value: Any, options: Any, schema: dict[str, Any], path: Path) -> Found:
    if not any(_equal(value, option) for option in options):
        yield f"{value!r} is not one of {options!r}"


def _const(v: Validator, value: Any, const: Any, schema: dict[str, Any], path: Path) -> Found:
    if not _equal(value, const):
        yield f"{const!r} was expected"


def _pattern(v: Validator, value: Any, pattern: str, schema: dict[str, Any], path: Path) -> Found:
    if isinstance(value, str) and not v._search(pattern, value):
        yield f"{value!r} does not match {pattern!r}"


def _minimum(v: Validator, value: Any, bound: Any, schema: dict[str, Any], path: Path) -> Found:
    if _is_number(value) and value < bound:
        yield f"{value!r} is less than the minimum of {bound!r}"


def _maximum(v: Validator, value: Any, bound: Any, schema: dict[str, Any], path: Path) -> Found:
    if _is_number(value) and value > bound:
        yield f"{value!r} is greater than the maximum of {bound!r}"


def _min_length(v: Validator, value: Any, n: int, schema: dict[str, Any], path: Path) -> Found:
    if isinstance(value, str) and len(value) < n:
        yield f"{value!r} is too short"


def _max_length(v: Validator, value: Any, n: int, schema: dict[str, Any], path: Path) -> Found:
    if isinstance(value, str) and len(value) > n:
        yield f"{value!r} is too long"


def _min_items(v: Validator, value: Any, n: int, schema: dict[str, Any], path: Path) -> Found:
    if isinstance(value, list) and len(value) < n:
        yield f"{value!r} should be non-empty" if n == 1 else f"{value!r} is too short"


def _unique(v: Validator, value: Any, unique: bool, schema: dict[str, Any], path: Path) -> Found:
    repeated = isinstance(value, list) and any(
        _equal(a, b) for i, a in enumerate(value) for b in value[i + 1 :]
    )
    if unique and repeated:
        yield f"{value!r} has non-unique elements"


def _prefix_items(
    v: Validator, value: Any, schemas: list[Any], schema: dict[str, Any], path: Path
) -> Found:
    if isinstance(value, list):
        for index, (item, sub) in enumerate(zip(value, schemas, strict=False)):
            yield from v._check(item, sub, (*path, index))


def _items(v: Validator, value: Any, items: Any, schema: dict[str, Any], path: Path) -> Found:
    if isinstance(value, list):
        for index in range(len(schema.get("prefixItems", [])), len(value)):
            yield from v._check(value[index], items, (*path, index))


def _required(
    v: Validator, value: Any, names: list[str], schema: dict[str, Any], path: Path
) -> Found:
    if isinstance(value, dict):
        for name in names:  # one error per missing name, as jsonschema reports them
            if name not in value:
                yield f"{name!r} is a required property"


def _min_properties(v: Validator, value: Any, n: int, schema: dict[str, Any], path: Path) -> Found:
    if isinstance(value, dict) and len(value) < n:
        yield (
            f"{value!r} should be non-empty"
            if n == 1
            else f"{value!r} does not have enough properties"
        )


def _properties(
    v: Validator, value: Any, properties: dict[str, Any], schema: dict[str, Any], path: Path
) -> Found:
    if isinstance(value, dict):
        for name, sub in properties.items():
            if name in value:
                yield from v._check(value[name], sub, (*path, name))


def _additional(v: Validator, value: Any, extra: Any, schema: dict[str, Any], path: Path) -> Found:
    if not isinstance(value, dict):
        return
    known = schema.get("properties", {})
    extras = [name for name in value if name not in known]
    if extra is False:
        if extras:  # one error for all of them, as jsonschema reports it
            listed = ", ".join(repr(name) for name in extras)
            verb = "was" if len(extras) == 1 else "were"
            yield f"Additional properties are not allowed ({listed} {verb} unexpected)"
    elif isinstance(extra, dict):
        for name in extras:
            yield from v._check(value[name], extra, (*path, name))


def _any_of(
    v: Validator, value: Any, alternatives: list[Any], schema: dict[str, Any], path: Path
) -> Found:
    failed: list[tuple[int, SchemaError]] = []
    for index, alternative in enumerate(alternatives):
        errors = list(v._check(value, alternative, path))
        if not errors:
            return
        failed += [(index, error) for error in errors]
    message = f"{value!r} is not valid under any of the given schemas"
    yield SchemaError("anyOf", alternatives, value, schema, path, message, tuple(failed))


def _property_names(
    v: Validator, value: Any, names: dict[str, Any], schema: dict[str, Any], path: Path
) -> Found:
    if isinstance(value, dict):
        for name in value:  # checked at the mapping's own path, as jsonschema does
            yield from v._check(name, names, path)


Check = Callable[[Validator, Any, Any, dict[str, Any], Path], Found]
_KEYWORDS: dict[str, Check] = {
    "type": _type,
    "$ref": _ref,
    "enum": _enum,
    "const": _const,
    "pattern": _pattern,
    "minimum": _minimum,
    "maximum": _maximum,
    "minLength": _min_length,
    "maxLength": _max_length,
    "minItems": _min_items,
    "uniqueItems": _unique,
    "prefixItems": _prefix_items,
    "items": _items,
    "required": _required,
    "minProperties": _min_properties,
    "properties": _properties,
    "additionalProperties": _additional,
    "propertyNames": _property_names,
    "anyOf": _any_of,
}

#: every keyword this module checks (tests compare it with the keywords the schema uses)
SUPPORTED = frozenset(_KEYWORDS)
