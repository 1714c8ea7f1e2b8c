"""Sections a kind owns (reconciler/spec/sections/): the committed schema is their assembly, each
names a kind that shows it in its desired state, and each fragment's defaults are its model's."""

from __future__ import annotations

import copy
import dataclasses
import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.kinds import all_kinds, kind_modules
from reconciler.review.desired_state import flatten
from reconciler.spec import sections
from reconciler.spec.loader import load_spec_text
from reconciler.spec.schema import schema_text

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = {
    "apiVersion": "reconciler/v1",
    "host": {"name": "vm102", "user": "user"},
    "profiles": {"personal": {"port": 18789}},
}


def test_the_committed_schema_is_the_assembly() -> None:
    # `make schema` writes it; editors and `reconciler schema` read the committed file.
    assert (ROOT / "schemas" / "spec.schema.json").read_text(encoding="utf-8") == (
        sections.assembled_text()
    ), "run `make schema`"
    assert schema_text() == sections.assembled_text()


def test_a_mount_or_definition_given_twice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real = sections.mount

    def twice(name: str) -> tuple[str, ...]:
        return ("backup",) if name == "metrics" else real(name)

    monkeypatch.setattr(sections, "mount", twice)
    with pytest.raises(ValueError, match="backup is mounted already"):
        sections.assemble_schema()


def _with(name: str, data: Any) -> dict[str, Any]:
    doc = copy.deepcopy(MINIMAL)
    *parents, key = sections.mount(name)
    node = doc
    for parent in parents:
        node = node.setdefault(parent, {})
    node[key] = data
    return doc


def _defaults(node: Any, data: Any) -> Any:
    """`data` with every default of its schema fragment written out."""
    if not isinstance(data, dict) or not isinstance(node, dict):
        return data
    out = dict(data)
    for key, sub in node.get("properties", {}).items():
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        if key in out:
            out[key] = _defaults(sub, out[key])
    return out


@pytest.mark.parametrize("name", sections.SECTION_NAMES)
def test_each_section_has_an_owner_that_shows_it(name: str) -> None:
    part = sections.fragment(name)
    assert part["owner"] in kind_modules(), f"section {name}: no kind module {part['owner']}"
    spec = load_spec_text(yaml.safe_dump(_with(name, part["minimal"])), f"{name}.yaml")
    module = importlib.import_module(f"reconciler.kinds.{part['owner']}")
    (kind,) = [k for k in all_kinds() if type(k).__module__ == module.__name__]
    shown = flatten(kind.desired(spec, Path("~user")))
    prefix = ".".join(sections.mount(name))
    assert any(path == prefix or path.startswith(prefix + ".") for path in shown), (
        f"{part['owner']}.desired shows nothing of {prefix}"
    )


@pytest.mark.parametrize("name", sections.SECTION_NAMES)
def test_each_fragments_defaults_are_its_models(name: str) -> None:
    part = sections.fragment(name)
    implicit = load_spec_text(yaml.safe_dump(_with(name, part["minimal"])), "implicit.yaml")
    filled = _defaults(part["schema"], part["minimal"])
    explicit = load_spec_text(yaml.safe_dump(_with(name, filled)), "explicit.yaml")
    assert dataclasses.replace(explicit, sha256=None) == dataclasses.replace(implicit, sha256=None)
