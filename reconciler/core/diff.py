"""Attribute-level differences between a desired and an actual record, via deepdiff."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from reconciler.core.action import AttributeChange

# How a key that exists on one side only shows on the other.
ABSENT = "(absent)"
_ABSENT = ABSENT


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
    if desired == actual:
        return ()  # the common case on a converged host; no need to import deepdiff
    if not desired or not actual:
        # deepdiff reports a whole-document change at the root here; name each key instead.
        side = desired or actual
        return tuple(
            _change(
                f"root['{key}']", actual.get(key, _ABSENT), desired.get(key, _ABSENT), sensitive
            )
            for key in sorted(side)
        )
    plain: list[tuple[str, Any, Any]] = []
    if _plain_changes(actual, desired, "root", plain):
        # Records of dicts and scalars (every kind's, today) need no deepdiff: same paths and
        # values, ~50x faster, which a 2,000-profile plan notices.
        changes = [_change(path, before, after, sensitive) for path, before, after in plain]
        return tuple(sorted(changes, key=lambda c: c.path))
    from deepdiff import DeepDiff  # heavy; only records with lists pay for it

    # threshold_to_diff_deeper=0: deepdiff >= 8 otherwise reports a whole dict as one change
    # when its keys differ much (a config with 1 of 5 owned keys showed as path "").
    found = DeepDiff(
        dict(actual),
        dict(desired),
        ignore_order=False,
        verbose_level=2,
        threshold_to_diff_deeper=0,
    )
    changes = []
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


_SCALAR = (str, int, float, bool, type(None))


def _plain_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], path: str, out: list[tuple[str, Any, Any]]
) -> bool:
    """What deepdiff reports for two trees of dicts and scalars, as (path, before, after).

    False (nothing decided) when a list or another type appears: deepdiff handles those.
    A value whose type differs (1 vs 1.0, a dict vs a string) is a change, as in deepdiff.
    """
    if not all(isinstance(k, str) for k in (*old, *new)):
        return False
    for key, after in new.items():
        where = f"{path}[{key!r}]"
        if key not in old:
            out.append((where, _ABSENT, after))
            continue
        before = old[key]
        if isinstance(before, dict) and isinstance(after, dict):
            if not _plain_changes(before, after, where, out):
                return False
        elif not isinstance(before, (*_SCALAR, dict)) or not isinstance(after, (*_SCALAR, dict)):
            return False
        elif type(before) is not type(after) or before != after:
            out.append((where, before, after))
    out.extend((f"{path}[{key!r}]", old[key], _ABSENT) for key in old if key not in new)
    return True


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
