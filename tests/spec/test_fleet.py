"""A fleet file: shared defaults deep-merged under each host, validated with positions in the
fleet file itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.spec import SpecInvalid
from reconciler.spec.fleet import is_fleet, load_fleet, merge
from reconciler.spec.loader import load_spec_text

REPO = Path(__file__).resolve().parents[2]
FLEET = REPO / "specs" / "fleets" / "example.yaml"


def test_mappings_merge_key_by_key_anything_else_is_replaced() -> None:
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1}
    over = {"a": {"y": [3], "z": 2}, "c": 3}
    assert merge(base, over) == {"a": {"x": 1, "y": [3], "z": 2}, "b": 1, "c": 3}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 1}  # inputs untouched


def test_a_fleet_file_is_told_from_a_spec() -> None:
    assert is_fleet(FLEET.read_bytes())
    assert not is_fleet((REPO / "specs" / "vm102.yaml").read_bytes())
    assert is_fleet(b"apiVersion: reconciler/v1\nhosts: {vm1: {host: {name: vm1}}}\n")
    assert not is_fleet(b"host: {name: vm1}\nprofiles:\n  hosts: 1\n")


def test_each_host_is_the_merged_spec() -> None:
    hosts = load_fleet(FLEET.read_bytes(), str(FLEET))
    assert [h.name for h in hosts] == ["vm102", "vm103"]
    vm102, vm103 = (load_spec_text(h.text, h.name) for h in hosts)
    assert (vm102.host.name, vm102.host.user, vm102.host.ssh and vm102.host.ssh.user) == (
        "vm102",
        "user",
        "admin",
    )
    assert sorted(p.name for p in vm102.profiles) == ["ops", "personal"]  # merged
    assert [p.name for p in vm103.profiles] == ["personal"]  # the default alone
    assert vm103.reconcile.timer.enabled and vm103.tailscale.operator == "user"
    # The same host as the single-host seed spec, field for field (but host.ssh).
    seed = load_spec_text((REPO / "specs" / "vm102.yaml").read_bytes(), "seed")
    assert vm102.profiles == seed.profiles and vm102.runtime == seed.runtime


def _errors(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    with pytest.raises(SpecInvalid) as invalid:
        load_fleet(path.read_bytes(), str(path))
    return [str(e).replace(str(path), "fleet.yaml") for e in invalid.value.errors]


def test_errors_point_into_the_fleet_file(tmp_path: Path) -> None:
    text = FLEET.read_text()
    # line 24 (defaults.profiles.personal.port) and the ops port of vm102 (line 37)
    text = text.replace("      port: 18789", "      port: 99999").replace(
        "        port: 18809", "        port: -1"
    )
    lines = text.splitlines()
    assert lines[23].strip() == "port: 99999" and lines[36].strip() == "port: -1"
    errors = _errors(text, tmp_path)
    assert any(
        e.startswith("fleet.yaml:24:")
        and "hosts.vm103.profiles.personal.port" in e
        and "(from defaults)" in e
        for e in errors
    ), errors
    assert any(e.startswith("fleet.yaml:24:") and "hosts.vm102" in e for e in errors), errors
    assert any(
        e.startswith("fleet.yaml:37:") and "hosts.vm102.profiles.ops.port" in e for e in errors
    ), errors
    assert not any("vm103.profiles.ops" in e for e in errors)


def test_the_fleet_files_own_shape_is_checked(tmp_path: Path) -> None:
    errors = _errors("apiVersion: reconciler/v1\nhosts: {}\nextra: 1\n", tmp_path)
    assert any("fleet.yaml:3:" in e and "unknown fleet field 'extra'" in e for e in errors)
    assert any("fleet.yaml:2:" in e and "hosts" in e for e in errors)
    errors = _errors("apiVersion: reconciler/v1\nhosts:\n  vm1: [1]\n", tmp_path)
    assert any("fleet.yaml:3:" in e and "must be a mapping" in e for e in errors), errors


def test_plan_of_a_fleet_file_is_a_fleet_plan(tmp_path: Path) -> None:
    """`plan fleet.yaml` behaves as `plan a.yaml b.yaml`: a block per host, then the table."""
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        FLEET.read_text().replace("      ssh: {address: vm10", "      # ssh: {x: vm10")
    )
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", str(fleet), "--host-check=off"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (
        f"=== vm102 ({fleet}:vm102)" in done.stdout and f"=== vm103 ({fleet}:vm103)" in done.stdout
    )
    assert "HOST" in done.stdout and f"{fleet}:vm103" in done.stdout.splitlines()[-1]
    bad = fleet.read_text().replace("interval: 15min", "interval: often")
    fleet.write_text(bad)
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", str(fleet), "--host-check=off"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 1 and f"{fleet}:28:" in done.stderr, done.stderr
    assert "invalid fleet file; nothing was probed or changed" in done.stderr


def test_validate_checks_a_fleet_file() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(FLEET)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0 and done.stdout.strip() == f"{FLEET}: ok (2 hosts)", done.stderr
