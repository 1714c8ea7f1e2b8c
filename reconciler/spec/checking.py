"""Is a spec valid? Reading and checking it, without building the typed `Spec`.

`validate` needs the verdict and every error, nothing more; the typed model (model.py and the
sections' models: about a seventh of a `validate`'s CPU to import) is built by loader.py for
the commands that go on to plan. Both go through `checked_data`, so they accept and refuse
exactly the same bytes, and both use the validation cache.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.bounded import InputRefused, read_bounded
from reconciler.spec import validation_cache
from reconciler.spec.errors import SpecError, SpecInvalid
from reconciler.spec.limits import MAX_BYTES
from reconciler.spec.schema_file import schema_text

if TYPE_CHECKING:
    from reconciler.spec.yaml_source import Document

# SHA-256 digests of spec bytes whose schema check already passed elsewhere: the remote agent
# fills it with the digest the admin machine validated, so the target needs no jsonschema. The
# semantic rules and the conversion still run here.
SCHEMA_CHECKED: set[str] = set()


def read_spec_bytes(path: str | Path) -> bytes:
    """The spec file's bytes, or SpecInvalid when it cannot be read or is over the limit."""
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
    return data


def check_spec(path: str | Path) -> None:
    """Raise SpecInvalid with every error when the spec at `path` is not valid."""
    checked_data(read_spec_bytes(path), str(path))


def check_spec_text(data: bytes | str, filename: str) -> None:
    """Raise SpecInvalid with every error when spec text is not valid."""
    checked_data(data, filename)


def checked_data(data: bytes | str, filename: str) -> tuple[str, dict[str, Any]]:
    """The sha256 of the spec's bytes and its validated plain data, or SpecInvalid.

    Bytes that passed here before (same code, same schema) are not parsed and checked again:
    their validated data comes from the cache (validation_cache).
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    digest = hashlib.sha256(raw).hexdigest()
    stamp = validation_cache.code_stamp()
    key = None if stamp is None else validation_cache.cache_key(raw, schema_text(), stamp)
    directory = validation_cache.cache_dir() if key is not None else None
    known = validation_cache.lookup(key, directory) if key is not None else None
    if known is not None:
        return digest, known
    schema_checked = digest in SCHEMA_CHECKED
    valid = _validated(raw, filename, schema_checked=schema_checked)
    if key is not None and not schema_checked:  # a pass on another machine's word is not ours
        validation_cache.store(key, directory, valid)
    return digest, valid


def _validated(raw: bytes, filename: str, *, schema_checked: bool) -> dict[str, Any]:
    """Parse and check the spec: its plain data, or SpecInvalid with every error."""
    # The parser, jsonschema and the rules are imported only when a spec is not in the cache.
    from reconciler.spec.yaml_source import read_document

    doc, errors = read_document(raw, filename)
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
