"""The spec corpus: every file under tests/data/specs/invalid/ fails with exactly the errors in its
sibling `.expected` file; every file under tests/data/specs/valid/ and specs/ loads.

`NAME.expected` holds the lines `reconciler validate NAME.yaml` prints (run from that directory):
`NAME.yaml:LINE:COL: FIELD: MESSAGE`, each optionally followed by an indented `  hint: ...` line.
To rewrite the expected files after a deliberate wording change, run the suite with
SPEC_CORPUS_UPDATE=1 and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.spec import SpecInvalid, load_spec
from reconciler.spec.checking import check_spec
from reconciler.spec.model import Spec

ROOT = Path(__file__).resolve().parents[2]
INVALID = ROOT / "tests" / "data" / "specs" / "invalid"
VALID = ROOT / "tests" / "data" / "specs" / "valid"
UPDATE = os.environ.get("SPEC_CORPUS_UPDATE") == "1"

INVALID_CASES = sorted(p.name for p in INVALID.glob("*.yaml"))
VALID_CASES = sorted(VALID.glob("*.yaml")) + sorted((ROOT / "specs").glob("*.yaml"))


def test_corpus_is_big_enough() -> None:
    assert len(INVALID_CASES) >= 45
    assert len(VALID_CASES) >= 5


# `validate` only checks (spec/checking.py); the commands that plan load: both say the same.
@pytest.mark.parametrize("read", [load_spec, check_spec], ids=["load", "check"])
@pytest.mark.parametrize("name", INVALID_CASES)
def test_invalid_spec(name: str, read: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(INVALID)
    assert callable(read)
    with pytest.raises(SpecInvalid) as caught:
        read(name)
    got = "\n".join(str(e) for e in caught.value.errors) + "\n"
    expected_file = INVALID / (name.removesuffix(".yaml") + ".expected")
    if UPDATE:
        expected_file.write_text(got, encoding="utf-8")
    assert expected_file.exists(), f"{expected_file.name} is missing"
    assert got == expected_file.read_text(encoding="utf-8")
    for error in caught.value.errors:
        assert error.file == name
        assert "Traceback" not in error.message


def test_every_expected_file_has_a_spec() -> None:
    orphans = [p.name for p in INVALID.glob("*.expected") if not p.with_suffix(".yaml").exists()]
    assert orphans == []


@pytest.mark.parametrize("path", VALID_CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_valid_spec(path: Path) -> None:
    check_spec(path)
    spec = load_spec(path)
    assert isinstance(spec, Spec)
    assert spec.path == path
    assert [p.name for p in spec.profiles] == sorted(p.name for p in spec.profiles)
