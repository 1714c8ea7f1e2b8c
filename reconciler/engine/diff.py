"""Attribute-level differences between a desired and an actual record, via deepdiff."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from reconciler.engine.action import AttributeChange

_ABSENT = "(absent)"


def attribute_changes(
    desired: Mapping[str, Any],
    actual: Mapping[str, Any],
    *,
    sensitive: Collection[str] = (),
) -> tuple[AttributeChange, ...]:
    """Changes from `actual` to `desired`, one per leaf path, sorted by path.

    Both sides are plain JSON-like data (normalised by the kind). Keys present on one side
    only show as added or removed. Paths in `sensitive` (or under them) are marked so that
    every renderer shows "(sensitive)" instead of the value.
    """
    if not desired or not actual:
        # deepdiff reports a whole-document change at the root here; name each key instead.
        side = desired or actual
        return tuple(
            _change(
                f"root['{key}']", actual.get(key, _ABSENT), desired.get(key, _ABSENT), sensitive
            )
            for key in sorted(side)
        )
    from deepdiff import DeepDiff  # heavy; only plans that have something to compare pay for it

    found = DeepDiff(dict(actual), dict(desired), ignore_order=False, verbose_level=2)
    changes: list[AttributeChange] = []
    for path, change in found.get("values_changed", {}).items():
        changes.append(_change(path, change["old_value"], change["new_value"], sensitive))
    for path, change in found.get("type_changes", {}).items():
        changes.append(_change(path, change["old_value"], change["new_value"], sensitive))
    for path, value in found.get("dictionary_item_added", {}).items():
        changes.append(_change(path, _ABSENT, value, sensitive))
    for path, value in found.get("dictionary_item_removed", {}).items():
        changes.append(_change(path, value, _ABSENT, sensitive))
    for path, value in found.get("iterable_item_added", {}).items():
        changes.append(_change(path, _ABSENT, value, sensitive))
    for path, value in found.get("iterable_item_removed", {}).items():
        changes.append(_change(path, value, _ABSENT, sensitive))
    return tuple(sorted(changes, key=lambda c: c.path))


_PART = re.compile(r"\['((?:[^'\\]|\\.)*)'\]|\[(\d+)\]")


def dotted(deepdiff_path: str) -> str:
    """`root['gateway']['port']` -> `gateway.port`; `root['serve'][0]` -> `serve[0]`."""
    out = ""
    for key, index in _PART.findall(deepdiff_path):
        out += f"[{index}]" if index else (f".{key}" if out else key)
    return out


def _change(path: str, before: Any, after: Any, sensitive: Collection[str]) -> AttributeChange:
    name = dotted(path)
    secret = any(name == s or name.startswith(s + ".") for s in sensitive)
    return AttributeChange(path=name, before=before, after=after, sensitive=secret)
