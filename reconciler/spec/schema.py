"""The spec's JSON Schema (schemas/spec.schema.json) and schema validation with positioned errors.

The schema is the single description of the format for editors and check-jsonschema. Here its
errors become `SpecError`s in the spec's own words: a field path, the line and column from the YAML,
and a hint (did you mean ..., quote it, ...). Pattern checks that the semantic rules repeat with a
better message (profile and user names, durations, loopback targets) are left to those rules.

The check itself is reconciler/spec/schema_validator.py (jsonschema's semantics for the keywords
the schema uses, without its import cost; jsonschema is the tests' oracle for it).
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Iterable
from typing import Any

from reconciler.spec.errors import SpecError
from reconciler.spec.schema_file import SCHEMA_PATH as SCHEMA_PATH  # re-exported
from reconciler.spec.schema_file import schema_text as schema_text  # re-exported
from reconciler.spec.schema_validator import SchemaError, Validator
from reconciler.spec.yaml_source import YAML11_BOOLS, Document, PathT, describe, field_path, show

# Schema leaves (paths as tests/test_desired_leaves.py walks them) that change no desired state:
# what a spec asks of a host is everything else, and `reconciler diff` shows it. Empty: every
# field of the format says something about the host (`apiVersion` admits one value only).
PRESENTATION_ONLY: tuple[str, ...] = ()

# $defs whose pattern (and minimum) the semantic rules check themselves, with better messages.
SEMANTIC_DEFS = ("profileName", "userName", "duration", "loopbackUrl")

# $defs pattern -> (message template, hint) for pattern errors the schema reports itself.
PATTERN_MESSAGES: dict[str, tuple[str, str | None]] = {
    "hostName": (
        "{value} is not a valid host name",
        "host names are dot-separated labels of letters, digits and hyphens, like vm102",
    ),
    "packageName": ("{value} is not a valid npm package name", "e.g. clawdbot or @scope/name"),
    "sshAddress": (
        "{value} is not a host name, ssh alias or IP address",
        "write what you would type after `ssh`, like vm102 or 100.64.0.7 (no leading -)",
    ),
    "programName": (
        "{value} is not a program name or absolute path",
        "write python3 or /usr/bin/python3.11",
    ),
    "version": (
        "{value} is not an exact version",
        "pin an exact version like 2026.1.24-3 (ranges and tags like latest are not pins)",
    ),
    "npmSpec": (
        "{value} is not a registry version, range or npm: alias",
        'write a version or range like "^7.1.0", or an alias like "npm:libsignal@6.0.0" '
        "(git, file and URL specifiers are not installed)",
    ),
    "nodeRange": (
        "{value} is not a semver range",
        'write a node-semver range like ">=22.12", ">=22.12.0 <25" or "22.x"',
    ),
    "homePath": (
        "{value} is not an absolute path or a path under ~/",
        "write /absolute/path or ~/path",
    ),
    "absolutePath": ("{value} is not an absolute path", "write the full path, starting with /"),
    "gitRef": (
        "{value} is not a valid git ref",
        "a branch, tag or commit: letters, digits and . _ / + -, not starting with -",
    ),
}

_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "null": "null",
}


@functools.cache
def _schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(schema_text())
    return loaded


def schema() -> dict[str, Any]:
    """The schema as a dict (a fresh copy: callers may change it)."""
    copied: dict[str, Any] = json.loads(schema_text())
    return copied


def pattern(def_name: str) -> str:
    """The regular expression of `$defs.<def_name>` (semantic rules use the schema's own patterns)."""
    value: str = _schema()["$defs"][def_name]["pattern"]
    return value


@functools.cache
def _validator() -> Validator:
    return Validator(_schema())


def validate(doc: Document, filename: str) -> tuple[list[SpecError], set[PathT]]:
    """Schema errors of `doc`, and the paths they are about (semantic rules skip those)."""
    errors: list[SpecError] = []
    paths: set[PathT] = set()
    for error in _validator().iter_errors(doc.data):
        path: PathT = tuple(error.absolute_path)
        def_name = _def_name(error)
        if def_name in SEMANTIC_DEFS and error.validator in ("pattern", "minimum"):
            continue
        if error.validator == "oneOf":  # serve entries: exactly one of profile/target (a rule)
            continue
        for err_path, key, message, hint in _translate(error, path, doc, def_name):
            if err_path in doc.broken:  # the YAML reader has said what is wrong here
                continue
            line, col = doc.locate(err_path, key=key)
            errors.append(SpecError(filename, line, col, field_path(err_path), message, hint))
            paths.add(err_path)
    return errors, paths


Issue = tuple[PathT, bool, str, "str | None"]


@functools.cache
def _patterns() -> dict[str, str]:
    defs = _schema()["$defs"]
    return {defs[name]["pattern"]: name for name in defs if "pattern" in defs[name]}


def _def_name(error: Any) -> str | None:
    """The `$defs` entry whose pattern the error is about (its words are in PATTERN_MESSAGES)."""
    found = error.schema.get("pattern") if isinstance(error.schema, dict) else None
    return _patterns().get(found) if isinstance(found, str) else None


def _translate(
    error: SchemaError, path: PathT, doc: Document, def_name: str | None
) -> Iterable[Issue]:
    """One schema error -> issues (path, point at key?, message, hint)."""
    kind = error.validator
    value = error.instance
    if kind == "additionalProperties" and isinstance(value, dict):
        allowed = sorted(error.schema.get("properties", {}))
        for key in value:
            if key not in allowed:
                yield (*path, key), True, "unknown field", _unknown_hint(key, allowed)
    elif kind == "required" and isinstance(value, dict):
        for key in error.validator_value:
            if key not in value:
                hint = "add apiVersion: reconciler/v1" if key == "apiVersion" else None
                yield (*path, key), True, "required field is missing", hint
    elif kind == "type":
        yield path, False, *_type_message(error.validator_value, value, path, doc)
    elif kind == "enum":
        options = error.validator_value
        message = f"{show(value)} is not one of: {', '.join(str(o) for o in options)}"
        yield path, False, message, _enum_hint(value, options, path, doc)
    elif kind == "const":
        yield path, False, f"must be {show(error.validator_value)}, not {show(value)}", None
    elif kind == "minProperties" and path == ("profiles",):
        yield (
            path,
            False,
            "at least one profile is required",
            "e.g. profiles: {personal: {port: 18789}}",
        )
    elif kind == "minimum":
        yield (
            path,
            False,
            f"{show(value)} is less than the minimum of {error.validator_value}",
            None,
        )
    elif kind == "maximum":
        yield (
            path,
            False,
            f"{show(value)} is greater than the maximum of {error.validator_value}",
            None,
        )
    elif kind == "minItems":
        hint = (
            "name the program, e.g. [/opt/reconciler/bin/reconciler], or remove the key to use "
            "the installed entry point"
            if path == ("reconcile", "command")
            else None
        )
        yield path, False, f"needs at least {error.validator_value} item, got none", hint
    elif kind == "minLength":
        yield path, False, "must not be empty", None
    elif kind == "maxLength":
        yield path, False, f"{show(value)} is longer than {error.validator_value} characters", None
    elif kind == "pattern" and def_name in PATTERN_MESSAGES:
        template, hint = PATTERN_MESSAGES[def_name]
        yield path, False, template.format(value=show(value)), hint
    elif kind == "pattern":
        yield path, False, f"{show(value)} does not match {error.validator_value}", None
    elif kind == "anyOf" and _fitting(error):
        # A field written in one of several shapes (runtime.docker: a word, or a mapping): the
        # errors of the shape the value has, in this module's words.
        for sub in _fitting(error):
            yield from _translate(sub, tuple(sub.absolute_path), doc, _def_name(sub))
    else:  # a keyword this module has no words for: the validator's own message
        yield path, False, error.message, None


def _fitting(error: Any) -> list[Any]:
    """The errors, under an anyOf, of the alternatives whose shape the value has (a word for
    an enum of words, a mapping for an object)."""
    value = error.instance
    alternatives = list(enumerate(error.validator_value))
    shapes = {
        i
        for i, alternative in alternatives
        if (isinstance(value, dict) and alternative.get("type") == "object")
        or (
            not isinstance(value, dict | list)
            and any(type(option) is type(value) for option in alternative.get("enum", ()))
        )
        or (isinstance(value, str) and "string" in _types(alternative))
    }
    if not shapes and not isinstance(value, dict | list):
        # A scalar no shape takes (runtime.node: 22): the scalar alternative's words
        # ("expected string or null", quote it), not "valid under none of the schemas".
        shapes = {i for i, a in alternatives if _types(a) and "object" not in _types(a)}
    return [sub for index, sub in error.context if index in shapes]


def _types(alternative: dict[str, Any]) -> list[str]:
    found = alternative.get("type", [])
    return [found] if isinstance(found, str) else list(found)


def _type_message(expected: Any, value: Any, path: PathT, doc: Document) -> tuple[str, str | None]:
    types = [expected] if isinstance(expected, str) else list(expected)
    words = [w for t in types for w in (("true", "false") if t == "boolean" else (_TYPE_WORDS[t],))]
    want = ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]
    plain = doc.plain.get(path)
    if "boolean" in types and isinstance(value, str) and plain in YAML11_BOOLS:
        word = "true" if YAML11_BOOLS[plain] else "false"
        return (
            f"{show(value)} is not a boolean: only true and false are booleans in a spec (YAML 1.2)",
            f"write {word}",
        )
    message = f"expected {want}, got {describe(value, plain)}"
    hint = None
    if value is None and "object" in types:
        hint = "an empty value is null in YAML: write {} for an empty mapping, or remove the key"
    elif value is None and "array" in types:
        hint = "an empty value is null in YAML: write [] for an empty list, or remove the key"
    elif "string" in types and plain and value is not None and not isinstance(value, str):
        hint = f'quote it to keep it as text: "{plain}"'
    elif types == ["integer"] and isinstance(value, str) and value.strip().isdigit():
        hint = "remove the quotes: ports and numbers are written without them"
    return message, hint


def _enum_hint(value: Any, options: list[Any], path: PathT, doc: Document) -> str | None:
    if not isinstance(value, str):
        return None
    plain = doc.plain.get(path)
    if plain in YAML11_BOOLS:
        return (
            f"{plain} is not a true/false switch here: write one of {', '.join(map(str, options))}"
        )
    close = difflib.get_close_matches(value.lower(), [str(o) for o in options], n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def _unknown_hint(key: str, allowed: list[str]) -> str:
    if key == "<<":
        return "YAML merge keys (<<) are not supported: write the fields out"
    lowered = {name.lower(): name for name in allowed}
    close = difflib.get_close_matches(key.lower(), list(lowered), n=1, cutoff=0.6)
    if close:
        return f"did you mean `{lowered[close[0]]}`?"
    return "allowed here: " + ", ".join(f"`{name}`" for name in allowed)
