"""Inputs that must fail with one clear SpecError, fast, instead of a traceback, a hang or a blowup.
(Cases too big or too binary to keep as files in tests/data/specs/invalid/.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.spec import SpecError, SpecInvalid, load_spec, yaml_source
from reconciler.spec.loader import load_spec_text
from reconciler.spec.yaml_source import MAX_BYTES, MAX_DEPTH, MAX_NODES

SPEC = "apiVersion: reconciler/v1\nhost: {name: vm102, user: user}\nprofiles:\n  personal: {port: 18789}\n"


def only_error(exc: pytest.ExceptionInfo[SpecInvalid]) -> SpecError:
    assert len(exc.value.errors) == 1, exc.value.errors
    return exc.value.errors[0]


def test_a_50_mb_file_is_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:
        f.write(SPEC.encode())
        f.truncate(50 * 1024 * 1024)  # sparse: cheap to make, refused by its size
    with pytest.raises(SpecInvalid) as exc:
        load_spec(big)
    error = only_error(exc)
    assert error.file == str(big)
    assert error.message.startswith("the file is too large (52428800 bytes")


def test_one_byte_over_the_limit_is_refused(tmp_path: Path) -> None:
    text = SPEC + "#" * (MAX_BYTES - len(SPEC)) + "\n"
    assert len(text) == MAX_BYTES + 1
    path = tmp_path / "over.yaml"
    path.write_text(text)
    with pytest.raises(SpecInvalid) as exc:
        load_spec(path)
    assert "too large" in only_error(exc).message
    with pytest.raises(SpecInvalid) as exc:
        load_spec_text(text, "over.yaml")
    assert "too large" in only_error(exc).message


def test_a_file_at_the_limit_is_read() -> None:
    text = SPEC + "#" * (MAX_BYTES - len(SPEC) - 1) + "\n"
    assert len(text) == MAX_BYTES
    assert load_spec_text(text, "limit.yaml").host.name == "vm102"


def test_nul_bytes_mean_binary() -> None:
    with pytest.raises(SpecInvalid) as exc:
        load_spec_text(SPEC.encode() + b"\x00\x01\x02garbage", "bin.yaml")
    assert str(only_error(exc)) == (
        "bin.yaml:5:1: this is a binary file (it contains NUL bytes), not YAML text"
    )


def test_utf16_is_binary_too() -> None:
    with pytest.raises(SpecInvalid) as exc:
        load_spec_text(SPEC.encode("utf-16"), "utf16.yaml")
    assert "binary file" in only_error(exc).message


def test_invalid_utf8_names_the_byte_and_line() -> None:
    with pytest.raises(SpecInvalid) as exc:
        load_spec_text(b"apiVersion: reconciler/v1\nhost: {name: vm\xff102}\n", "latin.yaml")
    assert str(only_error(exc)) == (
        "latin.yaml:2:16: the file is not valid UTF-8 (byte 0xff)\n  hint: save the spec as UTF-8 text"
    )


def test_random_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "random.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(SpecInvalid) as exc:
        load_spec(path)
    assert "binary" in only_error(exc).message


BILLION_LAUGHS = """\
apiVersion: reconciler/v1
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_billion_laughs_stops_at_the_node_limit() -> None:
    with pytest.raises(SpecInvalid) as exc:
        load_spec_text(BILLION_LAUGHS, "lol.yaml")
    error = only_error(exc)
    assert (
        error.message == f"the document expands to more than {MAX_NODES} values (through aliases)"
    )
    assert error.line > 1 and error.hint


def test_billion_laughs_under_a_duplicate_key_still_stops() -> None:
    text = BILLION_LAUGHS + "i: *i\n"
    with pytest.raises(SpecInvalid) as exc:
        load_spec_text(text, "lol.yaml")
    assert "expands to more than" in only_error(exc).message


def test_one_anchor_used_many_times_stops() -> None:
    big = "[" + ",".join(["1"] * 1000) + "]"
    text = "x: &x " + big + "\ny: [" + ",".join(["*x"] * 200) + "]\n"
    with pytest.raises(SpecInvalid) as exc:
        load_spec_text(text, "wide.yaml")
    assert "expands to more than" in only_error(exc).message


def test_too_many_plain_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_source, "MAX_NODES", 1000)  # the real limit takes a second to reach
    text = "x: [" + ",".join(["1"] * 1010) + "]\n"
    with pytest.raises(SpecInvalid) as exc:
        load_spec_text(text, "many.yaml")
    assert only_error(exc).message == "more than 1000 YAML nodes"


@pytest.mark.parametrize("style", ["flow", "block"])
def test_deep_nesting_is_refused(style: str) -> None:
    depth = MAX_DEPTH * 3
    if style == "flow":
        text = "x: " + "[" * depth + "]" * depth + "\n"
    else:
        text = "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "v\n"
    with pytest.raises(SpecInvalid) as exc:
        load_spec_text(text, "deep.yaml")
    assert only_error(exc).message == f"nested more than {MAX_DEPTH} levels deep"


def test_very_deep_flow_nesting_in_a_big_file() -> None:
    text = "[" * 500_000
    with pytest.raises(SpecInvalid) as exc:
        load_spec_text(text, "deep.yaml")
    assert "nested more than" in only_error(exc).message


def test_a_huge_number() -> None:
    with pytest.raises(SpecInvalid) as exc:
        load_spec_text(SPEC.replace("18789", "9" * 5000), "num.yaml")
    assert "is too long" in only_error(exc).message


def test_missing_file() -> None:
    with pytest.raises(SpecInvalid) as exc:
        load_spec("does/not/exist.yaml")
    assert str(only_error(exc)) == (
        "does/not/exist.yaml: cannot read the spec: No such file or directory"
    )


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(SpecInvalid) as exc:
        load_spec(tmp_path)
    assert "cannot read the spec" in only_error(exc).message


def test_errors_name_the_path_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.yaml").write_text(SPEC.replace("18789", "70000"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecInvalid) as exc:
        load_spec("sub/x.yaml")
    assert str(only_error(exc)) == (
        "sub/x.yaml:4:20: profiles.personal.port: 70000 is greater than the maximum of 65535"
    )
