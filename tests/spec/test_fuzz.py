"""Whatever is in the file, `reconciler validate` answers with exit 0 or 1 and a message, never a
traceback. `--debug` makes the CLI re-raise unexpected exceptions, so any bug shows up here."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.cli import cli
from reconciler.spec.schema import schema

ROOT = Path(__file__).resolve().parents[2]
SEED = yaml.safe_load((ROOT / "specs" / "example-full.yaml").read_text())

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _property_names(node: Any) -> set[str]:
    names: set[str] = set()
    if isinstance(node, dict):
        names |= set(node.get("properties", {}))
        for value in node.values():
            names |= _property_names(value)
    elif isinstance(node, list):
        for value in node:
            names |= _property_names(value)
    return names


# Every field name the schema knows, plus profile names and YAML oddities.
KEYS = sorted(_property_names(schema()) | {"personal", "ops", "<<", "on", "no", "Yes"})
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["yes", "no", "on", "off", "y", "n", "15min", "0s", "http://127.0.0.1:1"])
    | st.sampled_from(["reconciler/v1", "clawdbot", "allow", "deny", "loopback", "~/x", "/x"])
)
keys = st.sampled_from(KEYS) | st.text(max_size=12)
trees = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=25,
)


@pytest.fixture(scope="module")
def spec_file() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp) / "fuzz.yaml"


def run_validate(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    result = CliRunner().invoke(cli, ["--debug", "validate", str(path)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        assert result.stdout == f"{path}: ok\n"
    else:
        assert result.stderr.startswith(str(path)), result.stderr
        assert result.stdout == ""


@FUZZ
@given(text=st.text(max_size=300))
def test_arbitrary_text(spec_file: Path, text: str) -> None:
    run_validate(spec_file, text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes(spec_file: Path, data: bytes) -> None:
    run_validate(spec_file, data)


@FUZZ
@given(tree=trees)
def test_arbitrary_yaml_structures(spec_file: Path, tree: Any) -> None:
    run_validate(spec_file, yaml.safe_dump(tree, allow_unicode=True).encode())


def _paths(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(data, dict):
        for key, value in data.items():
            out += _paths(value, (*path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out += _paths(value, (*path, i))
    return out


SEED_PATHS = _paths(SEED)[1:]


@FUZZ
@given(where=st.sampled_from(SEED_PATHS), value=trees, style=st.sampled_from([False, True, None]))
def test_mutated_valid_spec(
    spec_file: Path, where: tuple[Any, ...], value: Any, style: Any
) -> None:
    """A valid spec with one value anywhere replaced: the rules meet every wrong shape."""
    data = yaml.safe_load(yaml.safe_dump(SEED))
    target = data
    for part in where[:-1]:
        target = target[part]
    target[where[-1]] = value
    run_validate(spec_file, yaml.safe_dump(data, default_flow_style=style).encode())


SEED_LINES = (ROOT / "specs" / "example-full.yaml").read_text().splitlines()


@FUZZ
@given(lines=st.lists(st.sampled_from(SEED_LINES), max_size=40))
def test_shuffled_lines(spec_file: Path, lines: list[str]) -> None:
    """Lines of a real spec in random order: broken indentation, dangling keys, duplicates."""
    run_validate(spec_file, "\n".join(lines).encode())
