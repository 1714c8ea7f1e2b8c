"""npm's semver ranges for the node prerequisite (`>=22.12`, `22.x`, `^22`, `a || b`).

A thin typed door to `nodesemver`, a port of npm's own node-semver: ranges mean exactly what they
mean to npm, prereleases included (`2026.1.24-3` is below `2026.1.24` and outside `>=2026.1.0`,
as in npm). Imported lazily: the port compiles its grammar at import (about 15 ms), so a plain
range (below) is checked, and compared with a release version, here; the port answers the rest.
"""

from __future__ import annotations

import re
from typing import Any

# A subset of npm's range grammar that is valid by construction: `||`-separated sets of
# space-separated comparators such as `>=22.12`, `^22`, `22.x` or `>=22.12.0 <25`. `validate`
# checks ranges of this shape without importing the port (its ~15 ms is a tenth of a
# `validate`); anything else, prereleases, hyphen ranges and mistakes included, goes to the
# port, which alone decides what is invalid and says why. tests/test_semver.py checks that the
# port accepts whatever this accepts.
_NUMBER = r"(?:0|[1-9][0-9]{0,8})"
_COMPARATOR = (
    rf"(?:(?:>=|<=|>|<|=|\^|~)?v?{_NUMBER}(?:\.{_NUMBER}){{0,2}}"
    rf"|{_NUMBER}(?:\.{_NUMBER})?\.[xX*])"
)
_SET = rf"{_COMPARATOR}(?: +{_COMPARATOR})*"
_PLAIN_RANGE = re.compile(rf" *{_SET} *(?:\|\| *{_SET} *)*")


# A release version, as `node --version` prints it: compared with a plain range without the port.
# Patterns, not compiled ones: `re` compiles (and caches) them on first use, which `validate`
# never reaches.
_RELEASE = rf"v?({_NUMBER})\.({_NUMBER})\.({_NUMBER})"
_PLAIN_COMPARATOR = (
    rf"(>=|<=|>|<|=|\^|~)?v?({_NUMBER})(?:\.({_NUMBER}))?(?:\.({_NUMBER}))?(?:\.[xX*])?"
)

Version = tuple[int, int, int]


def _bump(parts: list[int]) -> Version:
    """The first version above every version that starts with `parts` (1 or 2 numbers)."""
    if len(parts) == 1:
        return (parts[0] + 1, 0, 0)
    return (parts[0], parts[1] + 1, 0)


def _comparator_holds(version: Version, comparator: str) -> bool:
    """npm's meaning of one plain comparator (`>=22.12`, `^22`, `22.x`, ...) for a release."""
    match = re.fullmatch(_PLAIN_COMPARATOR, comparator)
    assert match is not None  # _PLAIN_RANGE matched the whole range
    op = match[1] or "="
    parts = [int(n) for n in match.groups()[1:] if n is not None]
    padded = parts + [0] * (3 - len(parts))
    low = (padded[0], padded[1], padded[2])
    if len(parts) == 3:
        full_ops = {"=": version == low, ">=": version >= low, ">": version > low}
        full_ops |= {"<": version < low, "<=": version <= low}
        if op in full_ops:
            return full_ops[op]
        if op == "~":
            return low <= version < (low[0], low[1] + 1, 0)
        # ^: the first non-zero number may not change
        major, minor, patch = low
        high = (major + 1, 0, 0) if major else (0, minor + 1, 0) if minor else (0, 0, patch + 1)
        return low <= version < high
    # A partial version is a range of its own: 22 = 22.x = [22.0.0, 23.0.0).
    if op in ("=", "~"):
        return low <= version < _bump(parts)
    if op == "^":
        nonzero = next((i for i, n in enumerate(parts) if n), len(parts) - 1)
        return low <= version < _bump(parts[: nonzero + 1])
    return {
        ">=": version >= low,
        ">": version >= _bump(parts),
        "<": version < low,
        "<=": version < _bump(parts),
    }[op]


def _plain_satisfies(version: str, range_text: str) -> bool | None:
    """`satisfies` for a release version and a plain range, without the port (a plan asks this
    on every run, and importing the port is about 90 M instructions, 8% of a plan); None for
    anything else, which the port answers. tests/test_semver.py checks every answer against
    the port's."""
    release = re.fullmatch(_RELEASE, version.strip())
    if release is None or not _PLAIN_RANGE.fullmatch(range_text):
        return None
    numbers: Version = (int(release[1]), int(release[2]), int(release[3]))
    return any(
        all(_comparator_holds(numbers, c) for c in part.split()) for part in range_text.split("||")
    )


def _nodesemver() -> Any:
    import nodesemver

    return nodesemver


def parse_version(text: str) -> tuple[int, int, int, tuple[str | int, ...]]:
    """`v22.12.0` -> (22, 12, 0, ()); `2026.1.24-3` -> (2026, 1, 24, (3,)). ValueError otherwise."""
    version = _nodesemver().parse(text.strip(), False)
    if version is None:
        raise ValueError(f"not a version: {text!r}")
    return (version.major, version.minor, version.patch, tuple(version.prerelease))


def satisfies(version: str, range_text: str) -> bool:
    """True when `version` is inside the npm range `range_text` (npm's rules, strict parsing)."""
    plain = _plain_satisfies(version, range_text)
    if plain is not None:
        return plain
    parsed = _nodesemver().parse(version.strip(), False)
    if parsed is None:
        raise ValueError(f"not a version: {version!r}")
    return bool(_range(range_text).test(parsed))


def check_range(range_text: str) -> None:
    """Raise ValueError with a clear message when `range_text` is not an npm range."""
    if _PLAIN_RANGE.fullmatch(range_text):
        return
    _range(range_text)


def _range(text: str) -> Any:
    # npm reads an empty range as "any version"; in a spec it is a mistake, not a wish.
    if not text.strip() or any(not part.strip() for part in text.split("||")):
        raise ValueError(f"empty version range in {text!r}")
    try:
        return _nodesemver().make_range(text, False)
    except ValueError as exc:
        raise ValueError(str(exc)) from None


def lowest_version(range_text: str) -> str | None:
    """The lowest version a range's own bounds name that satisfies it (`>=24.16.0 <25 ||
    >=26.1.0` -> `24.16.0`), for a hint that names a version; None when no bound does
    (`<25`) or the range cannot be read."""
    try:
        sets = _range(range_text).set
    except ValueError:
        return None
    found: list[str] = []
    for comparators in sets:
        for comparator in comparators:
            if comparator.operator in (">=", "=", "") and comparator.semver is not None:
                text = str(comparator.semver)
                if text[:1].isdigit() and satisfies(text, range_text):
                    found.append(text)
    return min(found, key=parse_version) if found else None
