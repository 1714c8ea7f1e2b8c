"""parse_duration: systemd-like durations in whole seconds, with clear errors."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reconciler.spec.duration import (
    PATTERN,
    UNIT_SECONDS,
    UNITS,
    format_duration,
    parse_duration,
    parse_timespan,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15min", 900),
        ("2m", 120),
        ("1h", 3600),
        ("1h 30min", 5400),
        ("1h30min", 5400),
        ("1d", 86400),
        ("1w", 604800),
        ("90", 90),
        (" 90 ", 90),
        ("5 minutes", 300),
        ("1 hour 2 sec", 3602),
        ("2 days", 172800),
        ("0s", 0),
        ("1hr", 3600),
    ],
)
def test_parse(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty duration"),
        ("   ", "empty duration"),
        ("soon", 'expected a number and a unit at "soon"'),
        ("15mins", 'unknown unit "mins"'),
        ("1.5h", "fractions"),
        ("500ms", "sub-second units"),
        ("1h 30", "30 needs a unit"),
        ("-5s", 'at "-"'),
        ("min", 'at "min"'),
        ("10000000000s", "too large"),
        ("٣s", "expected a number"),  # not an ASCII digit
    ],
)
def test_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_duration(text)


def test_non_text_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_duration(30)  # type: ignore[arg-type]


@settings(max_examples=200)
@given(st.text(alphabet="0123456789 .smhdwinecorunyk\t-", max_size=20))
@example("1h 30min")
@example("15 mins")
def test_schema_pattern_accepts_exactly_what_parses(text: str) -> None:
    """The schema's pattern (for editors) and parse_duration agree (except absurd numbers)."""
    try:
        parse_duration(text)
        parses = True
    except ValueError as exc:
        if "too large" in str(exc):
            return
        parses = False
    assert bool(re.search(PATTERN, text)) == parses, text


@given(st.integers(min_value=1, max_value=10**8))
def test_format_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


# --- systemd's own output (status reads NextElapseUSecMonotonic) ---------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2h 3min 4.5s", 7384.5), ("1d 2h", 93600.0), ("250ms", 0.25), ("3us", 3e-6), ("12μs", 12e-6),
     ("1w", 604800.0), ("0", None), ("", None), ("infinity", None)],
)  # fmt: skip
def test_parse_timespan(text: str, seconds: float | None) -> None:
    assert parse_timespan(text) == (pytest.approx(seconds) if seconds is not None else None)


@pytest.mark.parametrize("text", ["2 hours", "5x", "1h garbage", "1.5", "5 s"])
def test_parse_timespan_refuses_unknown_text(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timespan(text)


def test_one_unit_table_serves_both_directions() -> None:
    # The spec's units are the whole-second subset of systemd's table, with the same values.
    assert all(UNIT_SECONDS[unit] == seconds for unit, seconds in UNITS.items())
    for unit, seconds in UNITS.items():
        assert parse_duration(f"3{unit}") == 3 * seconds
        assert parse_timespan(f"3{unit}") == 3 * seconds
    assert parse_timespan("1M") == pytest.approx(2_629_800)
    with pytest.raises(ValueError, match='unknown unit "M"'):
        parse_duration("1M")
