"""What a user installs: the wheel `make dist` builds, and the lock file CI and `make venv` use."""

from __future__ import annotations

import email
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "ci.lock"


def _project() -> dict[str, object]:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        project: dict[str, object] = tomllib.load(fh)["project"]
    return project


def _pins() -> dict[str, tuple[str, int]]:
    """name -> (pinned version, number of hashes), from requirements/ci.lock."""
    pins: dict[str, tuple[str, int]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text()):
        head = re.match(r"([A-Za-z0-9._-]+)==([^\s\\]+)", block)
        if head:
            name = re.sub(r"[-_.]+", "-", head.group(1)).lower()
            pins[name] = (head.group(2), block.count("--hash=sha256:"))
    return pins


def test_the_lock_pins_every_dependency_inside_its_range_with_hashes() -> None:
    project = _project()
    extras = project["optional-dependencies"]
    assert isinstance(extras, dict)
    wanted = [*project["dependencies"], *extras["dev"], *extras["test"]]  # type: ignore[misc]
    pins = _pins()
    for text in wanted:
        req = Requirement(text)
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in pins, f"{text} is not in {LOCK.name}: run `make lock`"
        version, _ = pins[name]
        assert req.specifier.contains(version, prereleases=True), (
            f"{LOCK.name} pins {name}=={version}, outside {text}: run `make lock`"
        )
    assert all(hashes for _, hashes in pins.values()), "every pin carries its hashes"
    assert "file://" not in LOCK.read_text() and "reconciler @" not in LOCK.read_text()


def test_the_license_is_an_spdx_expression() -> None:
    project = _project()
    assert project["license"] == "MIT"  # PEP 639: no deprecated `license = {text = ...}` table
    assert (ROOT / "LICENSE").is_file()


def test_the_wheel_carries_the_entry_point_schemas_and_metadata(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--quiet",
            "--no-isolation",
            "-o",
            str(tmp_path),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("reconciler-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(zf.read(info))
        entry_points = zf.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert {"reconciler/schemas/spec.schema.json", "reconciler/schemas/plan.schema.json"} <= names
    assert "reconciler = reconciler.cli:main" in entry_points
    assert meta["License-Expression"] == "MIT"
    assert not any(n.startswith("tests/") for n in names)
    assert set(meta.get_all("Requires-Dist") or []) >= {
        str(Requirement(r))
        for r in _project()["dependencies"]  # type: ignore[attr-defined]
    }
