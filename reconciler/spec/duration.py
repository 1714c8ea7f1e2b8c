"""Durations, one parser for both directions of systemd's time spans (systemd.time(7)).

- `parse_duration`: what a spec may write: `30s`, `15min`, `2m`, `1h 30min`, `1d`, or a bare
  number of seconds. Only whole seconds: sub-second units (`ms`, `us`), months, years and fractions
  (`1.5h`) are refused, because every consumer (systemd timer settings, start timeouts) works in
  whole seconds here.
- `parse_timespan`: what systemd prints (`systemctl show`'s `2h 3min 4.5s`, `250ms`, `3μs`).

Both read terms with one unit table and one term scanner; they differ only in what they accept.
"""

from __future__ import annotations

import json
import re

# Every spelling systemd.time(7) accepts, in seconds. `m` is minutes and `M` months (as in
# systemd); a month and a year are systemd's averages (30.44 and 365.25 days).
UNIT_SECONDS: dict[str, float] = {
    "ns": 1e-9,
    "nsec": 1e-9,
    "us": 1e-6,
    "usec": 1e-6,
    "µs": 1e-6,  # micro sign
    "μs": 1e-6,  # Greek mu: newer systemd prints this one
    "ms": 1e-3,
    "msec": 1e-3,
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
    "M": 2_629_800,
    "month": 2_629_800,
    "months": 2_629_800,
    "y": 31_557_600,
    "year": 31_557_600,
    "years": 31_557_600,
}

# What a spec may write: the whole-second units with a fixed length, seconds to weeks.
UNITS: dict[str, int] = {u: int(s) for u, s in UNIT_SECONDS.items() if 1 <= s <= 604800}

_SUBSECOND = {u for u, s in UNIT_SECONDS.items() if s < 1}
_MAX_DIGITS = 9  # 999999999 of any unit is already decades; more is a typo


def _alternation(units: dict[str, int] | dict[str, float]) -> str:
    # Longest first, so that `min` is not read as `m` + `in`, nor `ms` as `m` + `s`.
    return "|".join(re.escape(u) for u in sorted(units, key=lambda u: (-len(u), u)))


# One `<number><unit>` term. A spec may put spaces between number and unit (`5 minutes`);
# systemd never does, and a gap in its output means the text is not what we think it is.
_UNIT_ALT = _alternation(UNITS)
_TERM = re.compile(rf"([0-9]+(?:\.[0-9]+)?)\s*({_alternation(UNIT_SECONDS)})(?![A-Za-z])")
_SYSTEMD_TERM = re.compile(rf"([0-9]+(?:\.[0-9]+)?)({_alternation(UNIT_SECONDS)})(?![A-Za-z])")
_WORD = re.compile(r"[0-9.]*\s*[^\s0-9]*")

# The same language as parse_duration accepts, as an ECMA-262/Python regex for the JSON Schema.
# (tests/spec/test_duration.py checks that the schema carries exactly this pattern.)
PATTERN = rf"^\s*(?:[0-9]+|(?:[0-9]+\s*(?:{_UNIT_ALT})\s*)+)\s*$"

EXAMPLES = "30s, 15min, 2m, 1h, 1h 30min, 1d or a number of seconds"


def _terms(text: str, term: re.Pattern[str]) -> list[tuple[int, str, str]]:
    """(position, number, unit) of each whitespace-separated term; ValueError(position) at the
    first piece that is not one."""
    found = []
    pos = 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        match = term.match(text, pos)
        if match is None:
            raise _NotATerm(pos)
        found.append((pos, match.group(1), match.group(2)))
        pos = match.end()
    return found


class _NotATerm(ValueError):
    def __init__(self, pos: int) -> None:
        super().__init__(pos)
        self.pos = pos


def parse_duration(text: str) -> int:
    """Seconds in `text` (`30s`, `15min`, `1h 30min`, `90`); ValueError with a clear message."""
    if not isinstance(text, str):
        raise ValueError(f"a duration must be text like {EXAMPLES}")
    stripped = text.strip()
    if not stripped:
        raise ValueError(f"empty duration: write one like {EXAMPLES}")
    if stripped.isascii() and stripped.isdigit():
        return _number(stripped)
    try:
        terms = _terms(stripped, _TERM)
    except _NotATerm as stop:
        raise ValueError(_explain(stripped, stop.pos)) from None
    total = 0
    for pos, number, unit in terms:
        if "." in number or unit not in UNITS:
            raise ValueError(_explain(stripped, pos))
        total += _number(number) * UNITS[unit]
    return total


def parse_timespan(text: str) -> float | None:
    """Seconds in a timespan as systemd prints it (`2h 3min 4.5s`, `250ms`); None for `0`, empty,
    `infinity` and `n/a` (nothing scheduled). ValueError for anything else."""
    text = text.strip()
    if text in ("", "0", "infinity", "n/a"):
        return None
    try:
        terms = _terms(text, _SYSTEMD_TERM)
    except _NotATerm:
        raise ValueError(f"unrecognised systemd timespan {text!r}") from None
    return sum(float(number) * UNIT_SECONDS[unit] for _, number, unit in terms)


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
