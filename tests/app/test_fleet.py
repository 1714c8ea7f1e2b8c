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
    # Records and suspensions of this test's own (the session's hold other tests' suspensions).
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
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


# --- doctor, versions, status across hosts: one table, or one JSON list ------------------------


def _table(stdout: str) -> list[list[str]]:
    """The table's rows (header first) split on runs of two or more blanks."""
    import re

    lines = stdout[stdout.index("HOST ") :].splitlines()
    return [
        re.split(r"\s{2,}", line.strip())
        for line in lines
        if line.startswith(("HOST", "vm", "broken"))
    ]


def test_doctor_of_several_hosts_prints_one_table_with_the_failing_hosts_error_in_its_row(
    host: FakeHostCli,
) -> None:
    result = host("doctor", "a.yaml", "b.yaml", "broken.yaml", "--host-check=off")
    assert result.exit_code == 1  # the worst: broken profiles, a spec that does not read
    assert "===" not in result.output  # no block per host: the table is the answer
    rows = _table(result.stdout)
    assert rows[0] == ["HOST", "SPEC", "PROFILE", "RESULT", "DETAIL"]
    assert [r[:4] for r in rows[1:]] == [
        ["vm102", "a.yaml", "ops", "broken"],
        ["vm102", "a.yaml", "personal", "broken"],
        ["vm103", "b.yaml", "ops", "broken"],
        ["vm103", "b.yaml", "personal", "broken"],
        ["broken", "broken.yaml", "-", "failed"],
    ]
    assert rows[-1][-1] == "broken.yaml:27:1: colour: unknown field"
    # Each broken link's fix follows the table, named by host and profile.
    assert "fix vm103 ops: reconciler apply b.yaml" in result.stdout


def test_doctor_of_several_hosts_as_json_holds_each_hosts_own_document(host: FakeHostCli) -> None:
    import json

    result = host("doctor", "a.yaml", "broken.yaml", "--host-check=off", "--format", "json")
    assert result.exit_code == 1
    entries = json.loads(result.stdout)
    assert [sorted(e) for e in entries] == [
        ["doctor", "errors", "exit_code", "host", "result", "spec"]
    ] * 2
    alone = host("doctor", "a.yaml", "--host-check=off", "--format", "json")
    assert alone.exit_code == 1 and "HOST" not in alone.stdout  # one host: its own output
    assert entries[0] == {
        "host": "vm102",
        "spec": "a.yaml",
        "result": "broken",
        "exit_code": 1,
        "doctor": json.loads(alone.stdout),
        "errors": [],
    }
    assert entries[1]["result"] == "failed" and entries[1]["doctor"] is None
    assert "colour: unknown field" in entries[1]["errors"][0]


def test_versions_of_several_hosts_is_a_row_per_profile(host: FakeHostCli) -> None:
    import json

    versioned = SPEC.replace(
        '    version: "2026.1.24-3"\n', '    version: "2026.1.24-3"\n    install: versioned\n'
    )
    Path("c.yaml").write_text(versioned.replace("name: vm102", "name: vm104"))
    result = host("versions", "a.yaml", "c.yaml", "--host-check=off")
    assert result.exit_code == 0, result.output
    rows = _table(result.stdout)
    assert rows[0] == ["HOST", "SPEC", "PROFILE", "RESULT", "RUNS", "WANTS", "DETAIL"]
    assert rows[1:] == [
        ["vm102", "a.yaml", "ops", "unversioned", "-", "-", "-"],
        ["vm102", "a.yaml", "personal", "unversioned", "-", "-", "-"],
        ["vm104", "c.yaml", "ops", "differs", "-", "2026.1.24-3", "-"],
        ["vm104", "c.yaml", "personal", "differs", "-", "2026.1.24-3", "-"],
    ]
    as_json = json.loads(
        host("versions", "a.yaml", "c.yaml", "--host-check=off", "--format", "json").stdout
    )
    alone = host("versions", "c.yaml", "--host-check=off", "--format", "json")
    assert as_json[1]["versions"] == json.loads(alone.stdout)


def test_status_of_a_fleet_file_is_a_row_per_host(host: FakeHostCli) -> None:
    import json

    Path("fleet.yaml").write_text(
        "apiVersion: reconciler/v1\ndefaults:\n"
        + "".join(f"  {line}\n" for line in SPEC.split("\n", 1)[1].splitlines())
        + "hosts:\n  vm102: {}\n  vm105:\n    host: {name: vm105}\n"
    )
    host("suspend", "a.yaml", "--reason", "maintenance")
    result = host("status", "fleet.yaml")
    assert result.exit_code == 0, result.output
    rows = _table(result.stdout)
    assert rows[0] == [
        "HOST",
        "SPEC",
        "RESULT",
        "LAST RUN",
        "DRIFT",
        "SUSPENDED",
        "TIMER",
        "DETAIL",
    ]
    assert [(r[0], r[1], r[5], r[7]) for r in rows[1:]] == [
        ("vm102", "fleet.yaml:vm102", "yes", "suspended: maintenance"),
        ("vm105", "fleet.yaml:vm105", "yes", "suspended: maintenance"),
    ]  # this (fake) machine is both hosts: one state place
    entries = json.loads(host("status", "fleet.yaml", "--format", "json").stdout)
    assert [e["spec"] for e in entries] == ["fleet.yaml:vm102", "fleet.yaml:vm105"]
    alone = json.loads(host("status", "a.yaml", "--json").stdout)
    assert entries[0]["status"].keys() == alone.keys()
    assert "Last run:" in host("status", "a.yaml").stdout  # one host: as it always was


def test_suspend_and_resume_of_several_hosts_print_what_each_did(host: FakeHostCli) -> None:
    result = host("suspend", "a.yaml", "b.yaml", "broken.yaml", "--reason", "-x")
    assert result.exit_code == 1  # the spec that does not read
    rows = _table(result.stdout)
    assert rows[0] == ["HOST", "SPEC", "RESULT", "DETAIL"]
    # This (fake) machine is both hosts: one state place, so the second keeps the first's.
    assert sorted(r[3].split(" since")[0] for r in rows[1:3]) == [
        "Unattended runs are already suspended",
        "Unattended runs suspended",
    ]
    assert rows[3] == ["broken", "broken.yaml", "failed", "broken.yaml:27:1: colour: unknown field"]
    result = host("resume", "a.yaml", "b.yaml")
    assert result.exit_code == 0, result.output
    assert sorted(r[3].split(" (")[0] for r in _table(result.stdout)[1:]) == [
        "Resumed unattended runs",
        "Unattended runs were not suspended.",
    ]
