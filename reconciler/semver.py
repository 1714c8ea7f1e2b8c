"""npm's semver ranges for the node prerequisite (`>=22.12`, `22.x`, `^22`, `a || b`).

A thin typed door to `nodesemver`, a port of npm's own node-semver: ranges mean exactly what they
mean to npm, prereleases included (`2026.1.24-3` is below `2026.1.24` and outside `>=2026.1.0`,
as in npm). Imported lazily: the port compiles its grammar at import (about 15 ms), and only a
plan that compares a node version pays for it.
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
