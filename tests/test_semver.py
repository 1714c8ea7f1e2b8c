from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.semver import check_range, parse_version, satisfies

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
