"""Every field of the spec reaches the desired state `reconciler diff` compares.

The leaves are walked from the spec's JSON Schema (every property path, map keys and values,
array items, enums), never listed by hand: for each, hypothesis draws another valid value, puts
it into a valid spec, and the typed spec that loads must resolve to another desired state. A
field no kind shows in its `desired(spec, home)` fails here, named by its path, until a kind
(or the host-level fields of `desired_state.host_fields`) shows it, or it is declared in
PRESENTATION_ONLY beside the schema (reconciler/spec/schema.py).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from reconciler.review.desired_state import desired_state, flatten
from reconciler.spec.errors import SpecInvalid
from reconciler.spec.loader import load_spec_text
from reconciler.spec.model import Spec
from reconciler.spec.schema import PRESENTATION_ONLY, schema

ROOT = Path(__file__).resolve().parents[1]
Path_ = tuple[str, ...]  # "*" a map's value, "<key>" a map's key, "[]" / "[N]" array items

# A second base reaching what specs/example-full.yaml does not: versioned installs, ssh, data
# roots, metrics, backups, a reconcile command, a profile nothing refers to.
FULL_VERSIONED = """
apiVersion: reconciler/v1
host:
  name: vm102
  user: user
  ssh: {address: vm102.example.net, user: admin, port: 2222, python: python3}
  data_roots: [/srv/clawd, /srv/spare]
product: openclaw
runtime:
  node: ">=22.12.0 <25"
  gateway:
    package: openclaw
    version: 2026.1.24-3
    install: versioned
    prefix: ~/.local/lib/gw
    overrides: {libsignal: "npm:libsignal@6.0.0"}
    extra: {sharp: "^0.33.0"}
    keep: 2
    start_timeout: 3min
    health_window: 20s
  docker: required
linger: false
tailscale:
  operator: user
  serve:
    - {https: 443, profile: personal}
    - {https: 8443, target: "http://127.0.0.1:3000"}
profiles:
  personal: {port: 18789, gateway_version: 2026.1.25}
  ops:
    port: 18809
    state_dir: /srv/clawd/ops
    workspace: /srv/clawd/ops-work
    bind: lan
    auth: token
    prune: true
  spare: {port: 18829, node: 24.22.0}
reconcile:
  timer: {enabled: true, interval: 10min, on_boot: 1min, randomized_delay: 0}
  source: {git: ~/host-spec, ref: main}
  command: [/opt/reconciler/bin/reconciler, --quiet]
metrics: {textfile_dir: /var/lib/prometheus/node-exporter}
backup:
  repository: /var/backups/restic
  password_file: ~/.config/restic/password
  environment_file: ~/.config/restic/env
  schedule: daily
  retention: {keep_last: 3, keep_daily: 7, keep_weekly: 4, keep_monthly: 6}
  profiles: [personal, ops]
  exclude: ["*.log"]
  consistency: live
"""

# A base with an installed node (runtime.node's mapping form).
PINNED_NODE = FULL_VERSIONED.replace('node: ">=22.12.0 <25"', "node: {version: 24.21.0, keep: 2}")

# Those, and every valid spec of the corpus: a leaf needs a base where another value is valid
# (a global install only where no profile pins its own version).
BASES: tuple[dict[str, Any], ...] = (
    yaml.safe_load((ROOT / "specs" / "example-full.yaml").read_text(encoding="utf-8")),
    yaml.safe_load(FULL_VERSIONED),
    yaml.safe_load(PINNED_NODE),
    *(
        yaml.safe_load(path.read_text(encoding="utf-8-sig"))
        for path in sorted((ROOT / "tests" / "data" / "specs" / "valid").glob("*.yaml"))
    ),
)

_NAME = st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True)
_SEGMENTS = st.lists(_NAME, min_size=1, max_size=3).map("/".join)
_PLAIN = st.one_of(_SEGMENTS, _SEGMENTS.map(lambda p: "/" + p), _SEGMENTS.map(lambda p: "~/" + p))
_SEMVER = st.tuples(*(st.integers(0, 30) for _ in range(3))).map(lambda v: ".".join(map(str, v)))

# How to draw a value of each named definition of the schema: canonical forms, so two drawn
# values that differ mean different things (a trailing slash is not a new path). A leaf using a
# definition missing here fails test_every_definition_has_a_generator.
DEFINITIONS: dict[str, st.SearchStrategy[Any]] = {
    "profileName": _NAME,
    "userName": _NAME,
    "hostName": st.lists(_NAME, min_size=1, max_size=3).map(".".join),
    "sshAddress": st.lists(_NAME, min_size=1, max_size=3).map(".".join),
    "programName": st.one_of(_NAME, _SEGMENTS.map(lambda p: "/" + p)),
    "packageName": _NAME,
    "version": _SEMVER,
    "nodeRange": st.one_of(
        _SEMVER.map(lambda v: ">=" + v), st.integers(18, 30).map(lambda n: f"{n}.x")
    ),
    "homePath": st.one_of(_SEGMENTS.map(lambda p: "~/" + p), _SEGMENTS.map(lambda p: "/srv/" + p)),
    "absolutePath": _SEGMENTS.map(lambda p: "/" + p),
    "gitRef": _NAME,
    "loopbackUrl": st.integers(1024, 65535).map(lambda n: f"http://127.0.0.1:{n}"),
    "duration": st.one_of(st.integers(0, 10**6), st.integers(1, 600).map(lambda n: f"{n}min")),
    "port": st.integers(1024, 65535),
    "npmSpec": _SEMVER.map(lambda v: "^" + v),
}


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A subschema with its `$ref` merged in, and the definition's name."""
    ref = node.get("$ref")
    if ref is None:
        return node, None
    name = ref.removeprefix("#/$defs/")
    target, _ = _resolve(root["$defs"][name], root)
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}, name


def leaves(
    node: dict[str, Any], root: dict[str, Any], path: Path_ = ()
) -> Iterator[tuple[Path_, dict[str, Any], str | None]]:
    """(path, subschema, definition) of every leaf under `node`."""
    node, name = _resolve(node, root)
    alternatives = [*node.get("anyOf", ()), *node.get("oneOf", ())]
    if any("properties" in a or "enum" in a for a in alternatives):
        # One field in several shapes (runtime.docker: a word, or a mapping): each shape's leaves.
        for alternative in alternatives:
            yield from leaves(alternative, root, path)
        return
    if "properties" in node:
        for key, sub in node["properties"].items():
            yield from leaves(sub, root, (*path, key))
        return
    if isinstance(node.get("additionalProperties"), dict):
        key_schema = node.get("propertyNames", {"type": "string"})
        yield from leaves(key_schema, root, (*path, "<key>"))
        yield from leaves(node["additionalProperties"], root, (*path, "*"))
        return
    if "items" in node or "prefixItems" in node:
        for i, sub in enumerate(node.get("prefixItems", [])):
            yield from leaves(sub, root, (*path, f"[{i}]"))
        if isinstance(node.get("items"), dict):
            yield from leaves(node["items"], root, (*path, "[]"))
        return
    yield path, node, name


ROOT_SCHEMA = schema()
LEAVES = {".".join(p): (p, node, name) for p, node, name in leaves(ROOT_SCHEMA, ROOT_SCHEMA)}


def _names(base: dict[str, Any]) -> list[str]:
    """The keys of the base's maps (profile names, package names): a reference (the profile a
    serve entry names) is only valid when it names something the spec has."""
    found: set[str] = set()
    for path, _, _ in LEAVES.values():
        if path[-1] == "<key>":
            node: Any = base
            for step in path[:-1]:
                node = node.get(step) if isinstance(node, dict) else None
            found.update(node if isinstance(node, dict) else ())
    return sorted(found)


def values(node: dict[str, Any], name: str | None, base: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values the leaf's schema allows (the schema and the rules pick the valid ones)."""
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if name in DEFINITIONS:
        drawn = DEFINITIONS[name]
    else:
        types = node.get("type", "string")
        types = types if isinstance(types, list) else [types]
        options: list[st.SearchStrategy[Any]] = []
        if "boolean" in types:
            options.append(st.booleans())
        if "integer" in types:
            low = node.get("minimum", 0)
            options.append(st.integers(low, min(node.get("maximum", low + 10**6), low + 10**6)))
        if "string" in types:
            pattern = node.get("pattern")
            options.append(st.from_regex(pattern) if pattern else _PLAIN)
        drawn = st.one_of(options)
    types = node.get("type", "string")
    if "string" not in (types if isinstance(types, list) else [types]):
        return drawn
    names = _names(base)
    # Mostly names: a drawn word rarely names a profile of the base.
    return st.one_of(*[st.sampled_from(names)] * 3, drawn) if names else drawn


def _set(doc: Any, path: Path_, value: Any) -> bool:
    """Put `value` at `path` (the last map entry or array item stands for `*`, `<key>`, `[]`;
    missing mappings are created). False when the base cannot hold it there."""
    head, rest = path[0], path[1:]
    if head in ("*", "<key>"):
        if not isinstance(doc, dict) or not doc:
            return False
        key = list(doc)[-1]
        if head == "<key>":
            doc[value] = doc.pop(key)
            return True
        return _set(doc[key], rest, value) if rest else _put(doc, key, value)
    if head.startswith("["):
        if not isinstance(doc, list):
            return False
        index = int(head[1:-1]) if head != "[]" else len(doc) - 1
        if not 0 <= index < len(doc):
            return False
        return _set(doc[index], rest, value) if rest else _put(doc, index, value)
    if not isinstance(doc, dict):
        return False
    if not rest:
        return _put(doc, head, value)
    if head not in doc:
        if rest[0].startswith("[") or rest[0] in ("*", "<key>"):
            return False
        doc[head] = {}
    return _set(doc[head], rest, value)


def _put(doc: Any, key: Any, value: Any) -> bool:
    doc[key] = value
    return True


def _load(data: dict[str, Any]) -> Spec | None:
    try:
        return replace(load_spec_text(yaml.safe_dump(data), "spec.yaml"), sha256=None)
    except SpecInvalid:
        return None


# (base, its typed spec); a corpus spec that does not survive yaml.safe_dump (a bare `y` it
# would not quote) is left out.
LOADED = tuple((base, spec) for base in BASES if (spec := _load(base)) is not None)


def test_the_bases_are_valid() -> None:
    assert all(_load(base) is not None for base in BASES[:2])
    assert len(LOADED) > len(BASES) / 2


def test_presentation_only_names_leaves_of_the_schema() -> None:
    assert set(PRESENTATION_ONLY) <= set(LEAVES)


def test_every_definition_has_a_generator() -> None:
    used = {name for _, _, name in LEAVES.values() if name is not None}
    assert used - set(DEFINITIONS) == set()


def test_the_walk_sees_array_items_map_keys_and_enums() -> None:
    assert {"profiles.<key>", "profiles.*.port", "tailscale.serve.[].https"} <= set(LEAVES)
    assert {"backup.exclude.[]", "reconcile.command.[0]", "runtime.gateway.extra.*"} <= set(LEAVES)
    assert "enum" in LEAVES["profiles.*.bind"][1]


@functools.cache
def _reaching(path: Path_) -> list[tuple[dict[str, Any], Spec]]:
    """The bases that have a place for `path`."""
    return [(b, spec) for b, spec in LOADED if _set(copy.deepcopy(b), path, "x")]


MUTABLE = sorted(
    k for k, (_, node, _) in LEAVES.items() if k not in PRESENTATION_ONLY and "const" not in node
)


@st.composite
def mutations(draw: st.DrawFn, leaf: str) -> tuple[str, Any, Spec, Spec | None]:
    """(leaf, value, the base's spec, the changed spec or None when the change is invalid)."""
    path, node, name = LEAVES[leaf]
    base, before = draw(st.sampled_from(_reaching(path)), label="base")
    value = draw(values(node, name, base), label="value")
    changed = copy.deepcopy(base)
    return leaf, value, before, _load(changed) if _set(changed, path, value) else None


def _is_change(m: tuple[str, Any, Spec, Spec | None]) -> bool:
    return m[3] is not None and m[3] != m[2]


def _check(m: tuple[str, Any, Spec, Spec | None]) -> None:
    leaf, value, before, after = m
    assert after is not None
    old, new = flatten(desired_state(before)), flatten(desired_state(after))
    assert old != new, f"{leaf} = {value!r} changes the spec but no kind's desired state"


@pytest.mark.parametrize("leaf", MUTABLE)
def test_every_leaf_can_change_and_its_change_shows(leaf: str) -> None:
    # find() stops at the first valid change of the typed spec (a leaf that no base can change
    # validly fails here: give FULL_VERSIONED a place for it).
    assert _reaching(LEAVES[leaf][0]), f"no base spec has a place for {leaf}: extend FULL_VERSIONED"
    found = find(
        mutations(leaf),
        _is_change,
        settings=settings(max_examples=2000, phases=[Phase.generate], database=None),
    )
    _check(found)


@pytest.mark.parametrize("leaf", MUTABLE)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_changing_any_leaf_changes_the_desired_state(leaf: str, data: st.DataObject) -> None:
    m = data.draw(mutations(leaf))
    if _is_change(m):  # an invalid value, or one the typed spec reads as the same, says nothing
        _check(m)
