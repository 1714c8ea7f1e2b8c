from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.semver import check_range, lowest_version, parse_version, satisfies

SEED = Path(__file__).resolve().parent.parent / "specs" / "vm102.yaml"

CASES = [
    ("v22.12.0", ">=22.12", True),
    ("v22.11.9", ">=22.12", False),
    ("v20.20.2", ">=22.12.0", False),
    ("22.3.1", "22.x", True),
    ("23.0.0", "22.x", False),
    ("24.16.0", ">=24.16.0 <25 || >=26.1.0", True),
    ("25.1.0", ">=24.16.0 <25 || >=26.1.0", False),
    ("26.2.0", ">=24.16.0 <25 || >=26.1.0", True),
    ("22.5.0", "^22", True),
    ("23.0.0", "^22.1", False),
    ("22.12.3", "~22.12", True),
    ("22.13.0", "~22.12", False),
    ("0.3.5", "^0.3.1", True),
    ("0.4.0", "^0.3.1", False),
    ("22.12.0", "22.12.0", True),
    ("22.12.1", "=22.12.0", False),
    ("22.12.0", ">=22.12 <25 || 26.x", True),
    ("26.0.1", ">=22.12 <25 || 26.x", True),
    ("25.9.0", ">=22.12 <25 || 26.x", False),
    # npm's prerelease rule: a prerelease satisfies only ranges naming a prerelease of the same
    # major.minor.patch, and sorts below its release.
    ("2026.1.24-3", "2026.1.24-3", True),
    ("2026.1.24-3", ">=2026.1.24-1", True),
    ("2026.1.24-3", ">=2026.1.0", False),
    ("2026.1.24-3", "<2026.1.24", False),
    ("2026.1.24", ">2026.1.24-3", True),
    ("v23.0.0-nightly20260101", ">=22.12", False),
]


@pytest.mark.parametrize(("version", "wanted", "ok"), CASES)
def test_satisfies(version: str, wanted: str, ok: bool) -> None:
    assert satisfies(version, wanted) is ok


@pytest.mark.parametrize("bad", ["", "latest", ">=", "22..1", ">> 22", "22 ||", "|| 22"])
def test_bad_ranges_are_value_errors(bad: str) -> None:
    with pytest.raises(ValueError):
        check_range(bad)


def test_parse_version_accepts_v_prefix_and_prerelease() -> None:
    assert parse_version("v22.12.0") == (22, 12, 0, ())
    assert parse_version("2026.1.24-3") == (2026, 1, 24, (3,))
    assert parse_version("22.12.0-rc.1") == (22, 12, 0, ("rc", 1))


@pytest.mark.parametrize("bad", ["", "22", "22.x", "v", "latest"])
def test_parse_version_refuses_what_is_not_one_version(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_version(bad)


def test_a_version_that_is_not_one_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a version"):
        satisfies("garbage", ">=22")


# --- the plain-range shortcut (semver._PLAIN_RANGE) never says "valid" where npm would not ----

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from reconciler import semver  # noqa: E402

_number = st.one_of(st.integers(0, 99).map(str), st.sampled_from(["2026", "01", "1234567890", ""]))
_comparator = st.builds(
    lambda op, v, parts, wild: f"{op}{v}{'.'.join(parts)}{wild}",
    st.sampled_from(["", ">=", "<=", ">", "<", "=", "^", "~", ">>", "=>", "> "]),
    st.sampled_from(["", "v", "V"]),
    st.lists(_number, min_size=1, max_size=4),
    st.sampled_from(["", ".x", ".X", ".*", "-1", ".x.x", "x"]),
)
_set = st.lists(_comparator, min_size=1, max_size=3).map(" ".join)
_ranges = st.lists(_set, min_size=1, max_size=3).map(lambda sets: " || ".join(sets))


@settings(max_examples=500)
@given(st.one_of(_ranges, st.text(alphabet="0123456789.xX*^~<>=v |-", max_size=24)))
def test_the_shortcut_accepts_only_what_npm_accepts(text: str) -> None:
    if semver._PLAIN_RANGE.fullmatch(text):
        semver._range(text)  # the port: raises on what npm refuses


@pytest.mark.parametrize(
    "plain", [">=22.12", "^22", "22.x", ">=22.12.0 <25", ">=24.16.0 <25 || >=26.1.0"]
)
def test_the_ranges_specs_use_take_the_shortcut(plain: str) -> None:
    assert semver._PLAIN_RANGE.fullmatch(plain)
    check_range(plain)


def test_validating_the_seed_spec_does_not_import_the_semver_port(tmp_path: Path) -> None:
    """`validate` of a spec with a plain node range pays nothing for npm's grammar."""
    script = (
        "import sys\n"
        "from reconciler.spec import load_spec\n"
        f"load_spec({str(SEED)!r})\n"
        "print('nodesemver' in sys.modules)\n"
    )
    env = {**os.environ, "RECONCILER_NO_CACHE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


# --- a release and a plain range are compared without the port: the same answers as the port ----

_small = st.integers(0, 3).map(str)
_plain_comparator = st.one_of(
    st.builds(
        lambda op, v, parts: f"{op}{v}{'.'.join(parts)}",
        st.sampled_from(["", ">=", "<=", ">", "<", "=", "^", "~"]),
        st.sampled_from(["", "v"]),
        st.lists(_small, min_size=1, max_size=3),
    ),
    st.builds(
        lambda parts, wild: f"{'.'.join(parts)}.{wild}",
        st.lists(_small, min_size=1, max_size=2),
        st.sampled_from(["x", "X", "*"]),
    ),
)
_plain_range = st.lists(
    st.lists(_plain_comparator, min_size=1, max_size=3).map(" ".join), min_size=1, max_size=2
).map(" || ".join)
_release = st.builds(
    lambda v, parts: v + ".".join(parts),
    st.sampled_from(["", "v"]),
    st.lists(st.integers(0, 4).map(str), min_size=3, max_size=3),
)


@settings(max_examples=300)
@given(_release, _plain_range)
def test_plain_ranges_answer_as_the_port_does(version: str, range_text: str) -> None:
    """Small numbers, so that versions fall on, under and over every bound; `^0.x`, `~`, `<=`
    of partial versions and x-ranges included."""
    assert semver._PLAIN_RANGE.fullmatch(range_text)
    plain = semver._plain_satisfies(version, range_text)
    assert plain is not None
    port = semver._range(range_text).test(semver._nodesemver().parse(version, False))
    assert plain is bool(port), (version, range_text)


@pytest.mark.parametrize(
    ("version", "wanted"),
    [("v23.0.0-nightly20260101", ">=22.12"), ("2026.1.24-3", ">=2026.1.0"), ("22.1", ">=22")],
)
def test_what_is_not_a_release_goes_to_the_port(version: str, wanted: str) -> None:
    assert semver._plain_satisfies(version, wanted) is None


def test_a_converged_plan_does_not_import_the_semver_port() -> None:
    """Comparing `node --version` with the seed spec's range pays nothing for npm's grammar."""
    script = (
        "import sys\n"
        "from reconciler.semver import satisfies\n"
        "assert satisfies('v22.12.0', '>=22.12') and not satisfies('v20.20.2', '>=22.12')\n"
        "print('nodesemver' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("range_text", "lowest"),
    [
        (">=24.16.0 <25 || >=26.1.0", "24.16.0"),  # openclaw 2026.9.3+'s engines
        (">=22.22.3 <23", "22.22.3"),
        ("^24", "24.0.0"),
        ("<25", None),  # no lower bound to name
        ("not a range", None),
    ],
)
def test_lowest_version_names_the_lowest_bound_that_satisfies(
    range_text: str, lowest: str | None
) -> None:
    assert lowest_version(range_text) == lowest
