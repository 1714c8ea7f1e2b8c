"""The desired state a spec resolves to, and what changes between two versions of a spec.

A pull request changes YAML; a reviewer needs the consequences: which ports, unit names, state
paths, serve targets and environment change. `desired_state` is the union of what every kind
wants (`desired(spec, home)`, resolved with the functions it plans with) and the few host-level
fields no kind owns, for a home directory given as a placeholder (`~user`): no host is read.
`desired_changes` compares two such documents leaf by leaf.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from reconciler.core.action import AttributeChange
from reconciler.core.diff import attribute_changes
from reconciler.kinds import all_kinds
from reconciler.spec.model import Spec


def home_placeholder(spec: Spec) -> Path:
    """`~user`: the spec user's home on whatever host applies it."""
    return Path(f"~{spec.host.user}")


def host_fields(spec: Spec, home: Path) -> dict[str, Any]:
    """What the spec says that no kind owns: which machine, whose gateways, which product (every
    kind reads it), how the admin machine reaches it, where data may lie. Declared here once."""
    ssh = spec.host.ssh
    return {
        "host": {
            "name": spec.host.name,
            "user": spec.host.user,
            "home": str(home),
            "ssh": None
            if ssh is None
            else {"address": ssh.address, "user": ssh.user, "port": ssh.port, "python": ssh.python},
            "data_roots": list(spec.host.data_roots),
        },
        "product": spec.product,
    }


def desired_state(spec: Spec, home: Path | None = None) -> dict[str, Any]:
    """Everything the spec asks of a host, resolved to concrete values (pure): the host-level
    fields and the union of every kind's `desired`."""
    home = home if home is not None else home_placeholder(spec)
    parts: list[tuple[str, Mapping[str, Any]]] = [("host", host_fields(spec, home))]
    parts += [(kind.name, kind.desired(spec, home)) for kind in all_kinds()]
    return merge(parts)


def merge(parts: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Nested mappings merged into one; a leaf two owners both give is an error (a value is
    declared once, by the one kind that plans it)."""
    out: dict[str, Any] = {}
    owners: dict[tuple[str, ...], str] = {}

    def add(
        target: dict[str, Any], doc: Mapping[str, Any], path: tuple[str, ...], owner: str
    ) -> None:
        for key, value in doc.items():
            where = (*path, key)
            if isinstance(value, Mapping) and value:
                existing = target.setdefault(key, {})
                if not isinstance(existing, dict) or where in owners:
                    raise ValueError(f"{'.'.join(where)}: given by {owners[where]} and {owner}")
                add(existing, value, where, owner)
            elif key in target:
                first = owners.get(where) or "another kind"
                raise ValueError(f"{'.'.join(where)}: given by {first} and {owner}")
            else:
                target[key] = value
                owners[where] = owner

    for owner, doc in parts:
        add(out, doc, (), owner)
    return out


def flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> {dotted.path: leaf}; lists and empty mappings are leaves.

    A null (not set, left alone) is left out: turning a section on then reads as its values
    added, not as `null` removed and a subtree added.
    """
    out: dict[str, Any] = {}
    for key, value in doc.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if value is None:
            continue
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


def desired_changes(old: Spec, new: Spec, home: Path | None = None) -> tuple[AttributeChange, ...]:
    """What changes in the desired state from `old` to `new`, one change per concrete value."""
    placeholder = home if home is not None else home_placeholder(new)
    before = flatten(desired_state(old, home if home is not None else home_placeholder(old)))
    after = flatten(desired_state(new, placeholder))
    return attribute_changes(after, before)
