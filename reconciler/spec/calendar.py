"""systemd calendar expressions (OnCalendar=), checked without systemd, and their typical period.

The spec is validated on any machine (also the admin's, without systemd), so this reads the subset
of systemd.time(7) that schedules use: the shorthands (`daily`, `weekly`, ...) and
`[WEEKDAYS] [YYYY-MM-DD] [HH:MM[:SS]]`, each component `*`, a number, a range `a..b`, a list
`a,b` or a repetition `a/n`. Anything else is refused with the accepted forms named, rather than
passed to a timer that systemd would reject at apply time. The period (`period_s`) is what the
freshness check calls "the schedule": a backup older than twice it is reported.
"""

from __future__ import annotations

import re
from datetime import date

SHORTHANDS: dict[str, int] = {
    "minutely": 60,
    "hourly": 3600,
    "daily": 86400,
    "weekly": 7 * 86400,
    "monthly": 31 * 86400,
    "quarterly": 92 * 86400,
    "semiannually": 184 * 86400,
    "yearly": 366 * 86400,
    "annually": 366 * 86400,
}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = {
    **{d: d for d in WEEKDAYS},
    "monday": "mon",
    "tuesday": "tue",
    "wednesday": "wed",
    "thursday": "thu",
    "friday": "fri",
    "saturday": "sat",
    "sunday": "sun",
}
_WEEKDAY_PART = re.compile(r"^[A-Za-z]+(?:(?:\.\.|,)[A-Za-z]+)*$")
_COMPONENT = re.compile(r"^(\*|[0-9]+(?:\.\.[0-9]+)?)(?:/([0-9]+))?$")
MAX_YEAR = 2199  # systemd-analyze calendar refuses 2200-01-01 (systemd 252)
EXAMPLES = "daily, weekly, *-*-* 03:00, Mon..Fri 22:30, *-*-* 00/6:00"


def check_calendar(text: str) -> str | None:
    """None when `text` is a calendar expression this subset accepts, else why not."""
    words = text.strip().split()
    if not words:
        return "the schedule is empty"
    if len(words) == 1 and words[0].lower() in SHORTHANDS:
        return None
    if len(words) == 1 and words[0].isalpha() and words[0].lower() not in _DAY_NAMES:
        return f"{text!r} is not a calendar expression (shorthands: {', '.join(SHORTHANDS)})"
    if words and _WEEKDAY_PART.fullmatch(words[0]):
        problem = _check_weekdays(words[0])
        if problem:
            return problem
        words = words[1:]
    date = next((w for w in words if "-" in w), None)
    time = next((w for w in words if ":" in w), None)
    if len(words) > 2 or len([w for w in words if w not in (date, time)]) > 0:
        return f"{text!r} is not a calendar expression this reconciler understands"
    if date is not None:
        problem = _check_fields(
            date.split("-"), (("year", 1970, MAX_YEAR), ("month", 1, 12), ("day", 1, 31))
        )
        if problem:
            return problem
    if time is not None:
        parts = time.split(":")
        if len(parts) == 2:
            parts.append("00")
        problem = _check_fields(parts, (("hour", 0, 23), ("minute", 0, 59), ("second", 0, 59)))
        if problem:
            return problem
    return None


def _check_weekdays(part: str) -> str | None:
    for name in re.split(r"\.\.|,", part):
        if name.lower() not in _DAY_NAMES:
            return f"{name!r} is not a weekday (Mon, Tue, Wed, Thu, Fri, Sat, Sun)"
    for item in part.split(","):  # systemd refuses `Sun..Mon` (the week starts on Monday)
        first, _, last = item.partition("..")
        if last and _weekday(first) > _weekday(last):
            return f"{item!r} is a reversed range (the week runs Mon..Sun)"
    return None


def _weekday(name: str) -> int:
    return WEEKDAYS.index(_DAY_NAMES[name.lower()])


def _check_fields(values: list[str], fields: tuple[tuple[str, int, int], ...]) -> str | None:
    if len(values) == 2 and fields[0][0] == "year":  # MM-DD: any year
        values = ["*", *values]
    if len(values) != len(fields):
        names = (
            "-".join(f[0] for f in fields)
            if fields[0][0] == "year"
            else ":".join(f[0] for f in fields)
        )
        return (
            f"{'-'.join(values) if fields[0][0] == 'year' else ':'.join(values)!r} is not {names}"
        )
    for value, (name, low, high) in zip(values, fields, strict=True):
        for item in value.split(","):
            match = _COMPONENT.fullmatch(item)
            if match is None:
                return f"{item!r} is not a valid {name} (a number, *, a..b, a,b or a/n)"
            numbers = [int(n) for n in re.findall(r"[0-9]+", match.group(1))]
            if any(not low <= n <= high for n in numbers):
                return f"{item!r} is out of range for the {name} ({low}..{high})"
            if len(numbers) == 2 and numbers[0] > numbers[1]:  # systemd refuses `5..3`
                return f"{item!r} is a reversed range for the {name}"
            if match.group(2) is not None and int(match.group(2)) == 0:
                return f"{item!r} repeats every 0 {name}s"
    return None


def period_s(text: str) -> int:
    """The typical time between two runs of a valid calendar expression, in seconds.

    Exact for the shorthands and for the usual `*-*-* HH:MM` style; for the rest it is the
    smallest unit that varies (a repetition `/n` counts n of them), which errs towards short:
    freshness warnings come early rather than late.
    """
    words = text.strip().split()
    if len(words) == 1 and words[0].lower() in SHORTHANDS:
        return SHORTHANDS[words[0].lower()]
    time = next((w for w in words if ":" in w), "00:00:00")
    date = next((w for w in words if "-" in w), "*-*-*")
    parts = time.split(":") + ([] if time.count(":") == 2 else ["00"])
    for value, unit in zip(reversed(parts), (1, 60, 3600), strict=True):
        step = _spread(value, unit)
        if step is not None:
            return step
    weekdays = words[0] if words and _WEEKDAY_PART.fullmatch(words[0]) else None
    if weekdays is not None and "," not in weekdays and ".." not in weekdays:
        return 7 * 86400
    has_weekdays = weekdays is not None
    date_parts = date.split("-")
    day = date_parts[-1]
    step = _spread(day, 86400)
    if step is not None or has_weekdays:
        return step or 86400
    return 31 * 86400 if len(date_parts) >= 2 and date_parts[-2] == "*" else 366 * 86400


def _spread(value: str, unit: int) -> int | None:
    """How often a time component with `value` fires within the next larger unit, as seconds."""
    if value == "*":
        return unit
    repeat = re.fullmatch(r"[0-9*]+(?:\.\.[0-9]+)?/([0-9]+)", value)
    if repeat:
        return unit * int(repeat.group(1))
    if "," in value or ".." in value:
        return unit
    return None


def _values(component: str, low: int, high: int) -> set[int]:
    """The numbers a checked component (`*`, `n`, `a..b`, lists, `/n`) stands for."""
    out: set[int] = set()
    for item in component.split(","):
        base, _, step = item.partition("/")
        if base == "*":
            start, end = low, high
        elif ".." in base:
            start, end = (int(n) for n in base.split(".."))
        else:
            start = int(base)
            end = high if step else start
        out.update(range(start, end + 1, int(step) if step else 1))
    return out


def elapses(text: str, today: date) -> bool:
    """Whether a valid calendar expression fires on some day from `today` on (systemd says
    `Next elapse: never` for `*-02-30` or a date in the past, and the timer never runs)."""
    words = text.strip().split()
    if len(words) == 1 and words[0].lower() in SHORTHANDS:
        return True
    weekdays: set[int] | None = None
    if words and _WEEKDAY_PART.fullmatch(words[0]):
        weekdays = set()
        for item in words[0].split(","):
            first, _, last = item.partition("..")
            weekdays.update(range(_weekday(first), _weekday(last or first) + 1))
        words = words[1:]
    parts = next((w for w in words if "-" in w), "*-*-*").split("-")
    if len(parts) == 2:
        parts = ["*", *parts]
    years = _values(parts[0], 1970, MAX_YEAR) if parts[0] != "*" else None
    months, days = _values(parts[1], 1, 12), _values(parts[2], 1, 31)
    # Any year: some leap year within 28 of today has every month-day on every weekday.
    candidates = years if years is not None else set(range(today.year, today.year + 29))
    for year in sorted(y for y in candidates if y >= today.year):
        for month in sorted(months):
            for day in sorted(days):
                try:
                    when = date(year, month, day)
                except ValueError:
                    continue  # Feb 30, Apr 31: no such day
                if when >= today and (weekdays is None or when.weekday() in weekdays):
                    return True
    return False
