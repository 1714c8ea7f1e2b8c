"""systemd-like durations: `30s`, `15min`, `2m`, `1h 30min`, `1d`, or a bare number of seconds.

Only whole seconds: sub-second units (`ms`, `us`) and fractions (`1.5h`) are refused, because every
consumer (systemd timer settings, start timeouts) works in seconds here.
"""

from __future__ import annotations

import json
import re

# Unit spellings as systemd.time(7) accepts them, in seconds. `m` is minutes (as in systemd).
UNITS: dict[str, int] = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
    "weeks": 604800,
}

_SUBSECOND = {"ms", "msec", "us", "usec", "µs", "ns", "nsec"}
_MAX_DIGITS = 9  # 999999999 of any unit is already decades; more is a typo

# One `<number><unit>` term, units longest first so `min` is not read as `m` + `in`.
_UNIT_ALT = "|".join(sorted(UNITS, key=lambda u: (-len(u), u)))
_TERM = re.compile(rf"([0-9]+)\s*({_UNIT_ALT})(?![A-Za-z])")
_WORD = re.compile(r"[0-9.]*\s*[^\s0-9]*")

# The same language as parse_duration accepts, as an ECMA-262/Python regex for the JSON Schema.
# (tests/spec/test_duration.py checks that the schema carries exactly this pattern.)
PATTERN = rf"^\s*(?:[0-9]+|(?:[0-9]+\s*(?:{_UNIT_ALT})\s*)+)\s*$"

EXAMPLES = "30s, 15min, 2m, 1h, 1h 30min, 1d or a number of seconds"


def parse_duration(text: str) -> int:
    """Seconds in `text` (`30s`, `15min`, `1h 30min`, `90`); ValueError with a clear message."""
    if not isinstance(text, str):
        raise ValueError(f"a duration must be text like {EXAMPLES}")
    stripped = text.strip()
    if not stripped:
        raise ValueError(f"empty duration: write one like {EXAMPLES}")
    if stripped.isascii() and stripped.isdigit():
        return _number(stripped)
    total = 0
    pos = 0
    while pos < len(stripped):
        if stripped[pos].isspace():
            pos += 1
            continue
        match = _TERM.match(stripped, pos)
        if match is None:
            raise ValueError(_explain(stripped, pos))
        total += _number(match.group(1)) * UNITS[match.group(2)]
        pos = match.end()
    return total


def _number(digits: str) -> int:
    if len(digits) > _MAX_DIGITS:
        raise ValueError(f"number {digits[:12]}... in duration is too large")
    return int(digits)


def _explain(text: str, pos: int) -> str:
    """Why the duration stops parsing at `pos`, naming the offending piece."""
    match = _WORD.match(text, pos)
    word = (match.group(0).strip() if match else "") or text[pos]
    number = re.match(r"[0-9.]*", word)
    digits = number.group(0) if number else ""
    unit = word[len(digits) :].strip()
    if "." in digits:
        return f"{_q(text)} is not a valid duration: fractions like {_q(word)} are not supported; use a smaller unit"
    if unit in _SUBSECOND:
        return f"{_q(text)} is not a valid duration: sub-second units like {_q(unit)} are not supported"
    if digits and unit:
        return (
            f"{_q(text)} is not a valid duration: unknown unit {_q(unit)} (use s, min, h, d or w)"
        )
    if digits:
        return f"{_q(text)} is not a valid duration: {digits} needs a unit when several terms are given"
    return f"{_q(text)} is not a valid duration: expected a number and a unit at {_q(word)} ({EXAMPLES})"


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def format_duration(seconds: int) -> str:
    """The shortest systemd-style spelling of `seconds` (`900` -> `15min`, `5400` -> `1h 30min`)."""
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts)
