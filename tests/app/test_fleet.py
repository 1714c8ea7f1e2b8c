"""`plan A.yaml B.yaml ...` and `apply A.yaml B.yaml ...` on this (fake) machine: one row per host,
named by the spec's host.name, each spec read and validated once however many phases ask."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakehost import FakeHost
from review_cli import SPEC, FakeHostCli

import reconciler.spec


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHostCli]:
    monkeypatch.chdir(tmp_path)
    fake = FakeHost(tmp_path / "host")
    fake.set_node("v22.12.0")
    fake.set_gateway("2026.1.24-3")
    Path("a.yaml").write_text(SPEC)
    Path("b.yaml").write_text(SPEC.replace("name: vm102", "name: vm103"))
    Path("broken.yaml").write_text(SPEC + "colour: blue\n")
    yield FakeHostCli(fake)
    fake.close()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often each spec file was read and validated."""
    counted: Counter[str] = Counter()
    load_spec = reconciler.spec.load_spec

    def counting(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        counted[Path(path).name] += 1
        return load_spec(path, *args, **kwargs)

    monkeypatch.setattr(reconciler.spec, "load_spec", counting)
    return counted


def _rows(stdout: str) -> dict[str, list[str]]:
    table = stdout[stdout.index("HOST ") :].splitlines()
    cells = [row.split() for row in table[1:]]
    return {c[1]: c for c in cells if len(c) > 1 and c[1].endswith(".yaml")}


def test_a_fleet_plan_names_rows_by_host_and_reads_each_spec_once(
    host: FakeHostCli, reads: Counter[str]
) -> None:
    result = host("plan", "a.yaml", "b.yaml", "broken.yaml", "--host-check=off", "--jobs", "2")
    rows = _rows(result.stdout)
    assert rows["a.yaml"][:3] == ["vm102", "a.yaml", "differs"]
    assert rows["b.yaml"][:3] == ["vm103", "b.yaml", "differs"]
    # A spec that does not read is named by its file, and its error is in its own block.
    assert rows["broken.yaml"][:3] == ["broken", "broken.yaml", "failed"]
    assert "colour: unknown field" in result.output
    assert result.exit_code == 1  # one failed host beats the others' differences
    assert reads == Counter({"a.yaml": 1, "b.yaml": 1, "broken.yaml": 1})


def test_a_fleet_apply_reviews_with_one_read_of_each_spec(
    host: FakeHostCli, reads: Counter[str]
) -> None:
    result = host("apply", "a.yaml", "b.yaml", "--host-check=off", "--dry-run")
    assert result.exit_code == 2, result.output
    assert {name: row[0] for name, row in _rows(result.stdout).items()} == {
        "a.yaml": "vm102",
        "b.yaml": "vm103",
    }
    assert reads == Counter({"a.yaml": 1, "b.yaml": 1})
    assert host.fake.mutating_calls() == []
