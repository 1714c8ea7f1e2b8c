"""Just enough of npm's semver ranges to check a prerequisite: `>=22.12`, `22.x`, `^22`, `a || b`."""

from __future__ import annotations

import re
from collections.abc import Callable

Version = tuple[int, int, int]

_VERSION = re.compile(r"^v?(\d+)(?:\.(\d+|x|\*))?(?:\.(\d+|x|\*))?(?:[-+].*)?$")
_TOKEN = re.compile(r"(?:>=|<=|>|<|=|\^|~)?\s*[^\s<>=^~|]+")
_COMPARATOR = re.compile(r"^(>=|<=|>|<|=|\^|~)?\s*(v?[\dx*][\w.*+-]*)$")


def parse_version(text: str) -> Version:
    """`v22.12.0` -> (22, 12, 0). Raises ValueError for anything else."""
    match = _VERSION.match(text.strip())
    if not match or any(p in ("x", "*") for p in match.groups() if p):
        raise ValueError(f"not a version: {text!r}")
    major, minor, patch = (int(p) if p else 0 for p in match.groups())
    return (major, minor, patch)


def satisfies(version: str, range_text: str) -> bool:
    """True when `version` is inside the npm-style `range_text`."""
    actual = parse_version(version)
    return any(all(test(actual) for test in conj) for conj in _parse_range(range_text))


def check_range(range_text: str) -> None:
    """Raise ValueError with a clear message when `range_text` is not a range we understand."""
    _parse_range(range_text)


def _parse_range(text: str) -> list[list[Callable[[Version], bool]]]:
    alternatives = []
    for part in text.split("||"):
        tokens = _TOKEN.findall(part.strip())
        if not tokens:
            raise ValueError(f"empty version range in {text!r}")
        if _TOKEN.sub("", part).strip():
            raise ValueError(f"not a version range: {part.strip()!r}")
        alternatives.append([_comparator(t.replace(" ", "")) for t in tokens])
    return alternatives


def _comparator(token: str) -> Callable[[Version], bool]:
    match = _COMPARATOR.match(token)
    if not match:
        raise ValueError(f"not a version comparator: {token!r}")
    op, raw = match.groups()
    parts = _VERSION.match(raw)
    if not parts:
        raise ValueError(f"not a version: {raw!r}")
    given = [p for p in parts.groups() if p is not None and p not in ("x", "*")]
    nums = [int(p) for p in given] + [0] * (3 - len(given))
    low: Version = (nums[0], nums[1], nums[2])
    precision = len(given)  # how many parts were given: 22.x is precision 1
    if op in (None, "=") and precision < 3:
        op = "~" if precision == 2 else "^"
    if op in (None, "="):
        return lambda v: v == low
    if op == ">=":
        return lambda v: v >= low
    if op == ">":
        return lambda v: v > low
    if op == "<=":
        return lambda v: v <= low
    if op == "<":
        return lambda v: v < low
    if op == "~":
        high: Version = (low[0], low[1] + 1, 0) if precision >= 2 else (low[0] + 1, 0, 0)
        return lambda v: low <= v < high
    # ^: no change of the left-most non-zero part
    if low[0] > 0 or precision == 1:
        caret: Version = (low[0] + 1, 0, 0)
    elif low[1] > 0 or precision == 2:
        caret = (0, low[1] + 1, 0)
    else:
        caret = (0, 0, low[2] + 1)
    return lambda v: low <= v < caret
