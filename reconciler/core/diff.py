"""Attribute-level differences between a desired and an actual record.

One plain, recursive comparison, with deepdiff's paths and semantics (tests check it against
deepdiff as an oracle). deepdiff itself is not used here: on the hot path (every kind's records
on every plan) it costs an import of ~40 ms and is ~50x slower per comparison than this walk,
while the records are small JSON-like trees of dicts, lists and scalars.
"""

from __future__ import annotations

import difflib
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
    if not desired or not actual:
        # deepdiff reports a whole-document change at the root here; name each key instead.
        side = desired or actual
        return tuple(
            _change(
                f"root['{key}']", actual.get(key, _ABSENT), desired.get(key, _ABSENT), sensitive
            )
            for key in sorted(side)
        )
    found: list[tuple[str, Any, Any]] = []
    _dict_changes(actual, desired, "root", found)
    changes = [_change(path, before, after, sensitive) for path, before, after in found]
    return tuple(sorted(changes, key=lambda c: c.path))


_SCALAR = (str, int, float, bool, type(None))


def _dict_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], path: str, out: list[tuple[str, Any, Any]]
) -> None:
    """(path, before, after) for every leaf that differs, as deepdiff reports them (its paths,
    one change per leaf, a different type is a change: 1 vs 1.0, a dict vs a string)."""
    for key, after in new.items():
        where = f"{path}[{key!r}]"
        if key not in old:
            out.append((where, _ABSENT, after))
        else:
            _value_changes(old[key], after, where, out)
    out.extend((f"{path}[{key!r}]", old[key], _ABSENT) for key in old if key not in new)


def _value_changes(before: Any, after: Any, where: str, out: list[tuple[str, Any, Any]]) -> None:
    if isinstance(before, dict) and isinstance(after, dict):
        _dict_changes(before, after, where, out)
    elif isinstance(before, list) and isinstance(after, list):
        _list_changes(before, after, where, out)
    elif type(before) is not type(after) or before != after:
        out.append((where, before, after))


def _list_changes(
    old: list[Any], new: list[Any], path: str, out: list[tuple[str, Any, Any]]
) -> None:
    """Ordered lists, as deepdiff compares them. Lists of scalars are matched as difflib
    matches them, unless comparing by position reports as few changes (deepdiff's rule: the
    difflib result only when it is strictly shorter); then an item removed and one added at the
    same index are one change. Other lists are compared by position, the longer one's tail
    added or removed."""
    if all(isinstance(x, _SCALAR) for x in (*old, *new)):
        matched: list[tuple[str, Any, Any]] = []
        matcher = difflib.SequenceMatcher(
            None, [_key(x) for x in old], [_key(x) for x in new], autojunk=False
        )
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag != "equal":
                _by_position(old[i1:i2], new[j1:j2], path, i1, j1, matched)
        if len(matched) > 1:
            positional: list[tuple[str, Any, Any]] = []
            _by_position(old, new, path, 0, 0, positional)
            if len(matched) >= len(positional):
                out.extend(positional)
                return
        out.extend(_merged(matched))
        return
    _by_position(old, new, path, 0, 0, out)


def _merged(found: list[tuple[str, Any, Any]]) -> list[tuple[str, Any, Any]]:
    """An item removed and another added at the same index: one change of that index."""
    added = {where: after for where, before, after in found if before is _ABSENT}
    removed = {where for where, before, after in found if after is _ABSENT}
    out = []
    for where, before, after in found:
        if where in added and where in removed:
            if after is _ABSENT:
                out.append((where, before, added[where]))
            continue  # the added half, folded into the removed one
        out.append((where, before, after))
    return out


def _by_position(
    old: list[Any], new: list[Any], path: str, i: int, j: int, out: list[tuple[str, Any, Any]]
) -> None:
    common = min(len(old), len(new))
    for offset in range(common):
        _value_changes(old[offset], new[offset], f"{path}[{i + offset}]", out)
    out.extend((f"{path}[{i + k}]", old[k], _ABSENT) for k in range(common, len(old)))
    out.extend((f"{path}[{j + k}]", _ABSENT, new[k]) for k in range(common, len(new)))


def _key(value: Any) -> str:
    """A hashable stand-in for a scalar list item, its type included (1 is not 1.0 or True)."""
    return f"{type(value).__name__}:{value!r}"


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
