"""The `runtime.node` section's semantic rules (and a profile's `node:`, which overrides it)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from reconciler.semver import check_range, satisfies
from reconciler.spec.rules import Issue, Rule, canonical, get, inside, profiles
from reconciler.spec.schema import pattern
from reconciler.spec.sections.node.model import NODE_PREFIX
from reconciler.spec.yaml_source import Document, show

MAX_VERSION_CHARS = 64  # as a gateway version: it names a directory and a unit's ExecStart


def _pins(doc: Document) -> list[tuple[tuple[str, ...], str]]:
    """(path, version) of every exact node the spec pins: runtime.node.version, profiles' node."""
    found: list[tuple[tuple[str, ...], str]] = []
    version = get(doc.data, "runtime", "node", "version")
    if isinstance(version, str):
        found.append((("runtime", "node", "version"), version))
    for name, body in profiles(doc).items():
        value = get(body, "node")
        if isinstance(value, str):
            found.append((("profiles", name, "node"), value))
    return found


def _exact(value: str) -> bool:
    return bool(re.search(pattern("version"), value))


def node_range(doc: Document) -> Iterator[Issue]:
    """runtime.node's range form is a range the prerequisite check (reconciler.semver) reads."""
    value = get(doc.data, "runtime", "node")
    if isinstance(value, str) and re.search(pattern("nodeRange"), value):  # else: schema error
        try:
            check_range(value)
        except ValueError as exc:
            yield Issue(
                ("runtime", "node"),
                f"{show(value)} is not a supported version range ({exc})",
                'write a range like ">=22.12", ">=22.12.0 <25" or "22.x"',
            )


def pinned_node_versioned(doc: Document) -> Iterator[Issue]:
    """An installed node runs in a unit only as `<node> <entry point>`, which only a versioned
    gateway install writes (a global install's npm shim runs whatever node is on PATH)."""
    gateway = get(doc.data, "runtime", "gateway")
    gateway = gateway if isinstance(gateway, dict) else {}
    if gateway.get("install") == "versioned" and not isinstance(gateway.get("command"), str):
        return
    for path, _ in _pins(doc):
        yield Issue(
            path,
            "an installed node needs runtime.gateway.install: versioned (the unit runs the "
            "version's entry point with that node)",
            "set runtime.gateway.install: versioned (without runtime.gateway.command), or "
            'write runtime.node as a range (node: ">=22.12") to check the node on PATH',
        )


def profile_node_in_range(doc: Document) -> Iterator[Issue]:
    """A profile's node satisfies runtime.node's range: the range says what every gateway
    runs on, so a pin outside it contradicts the spec itself."""
    wanted = get(doc.data, "runtime", "node")
    if not isinstance(wanted, str):
        return
    try:
        check_range(wanted)
    except ValueError:
        return  # node_range says why
    for path, version in _pins(doc):
        if not _exact(version):
            continue  # the schema says why
        try:
            ok = satisfies(version, wanted)
        except ValueError:
            continue
        if not ok:
            yield Issue(
                path,
                f"node {version} does not satisfy runtime.node {show(wanted)}",
                f"pin a node that satisfies {show(wanted)}, or widen runtime.node",
            )


def node_version_lengths(doc: Document) -> Iterator[Issue]:
    """An exact node version is at most MAX_VERSION_CHARS long (it names a directory)."""
    for path, version in _pins(doc):
        if len(version) > MAX_VERSION_CHARS:
            yield Issue(
                path,
                f"{show(version[:24] + '...')} is {len(version)} characters long, more than "
                f"any node release ({MAX_VERSION_CHARS} at most)",
                "pin an exact version like 24.21.0",
            )


def gateway_prefix_apart(doc: Document) -> Iterator[Issue]:
    """The gateway prefix and the installed nodes' directory do not overlap: each one's
    retention removes the version directories nobody wants in its own."""
    if not _pins(doc):
        return
    prefix: Any = get(doc.data, "runtime", "gateway", "prefix")
    if not isinstance(prefix, str) or not prefix.startswith(("/", "~/")):
        return
    user = get(doc.data, "host", "user")
    user = user if isinstance(user, str) else "user"
    mine, theirs = canonical(NODE_PREFIX, user), canonical(prefix, user)
    if inside(mine, theirs) or inside(theirs, mine):
        yield Issue(
            ("runtime", "gateway", "prefix"),
            f"{show(prefix)} overlaps {NODE_PREFIX}, where the reconciler installs node",
            "give gateway versions a directory of their own (leave prefix out: "
            "~/.local/lib/<product>)",
        )


RULES: tuple[Rule, ...] = (
    node_range,
    pinned_node_versioned,
    profile_node_in_range,
    node_version_lengths,
    gateway_prefix_apart,
)
