"""The machine-wide caches: one build under concurrency, nothing half-written after a crash,
and a new key when the recipe or the dependency list changes (no debootstrap run here)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from . import images

BUILDS: list[str] = []


def _fake_build(root: Path, wheels_python: str) -> None:
    import time

    BUILDS.append(str(root))
    time.sleep(0.5)
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text("fake\n")


def _crashing_build(root: Path, wheels_python: str) -> None:
    (root / "etc").mkdir(parents=True)
    raise RuntimeError("boom")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RECONCILER_E2E_CACHE", str(tmp_path / "cache"))
    BUILDS.clear()
    return tmp_path / "cache"


def test_concurrent_builders_build_once(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "_build_rootfs_tree", _fake_build)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(images.ensure_rootfs())) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(BUILDS) == 1
    assert len(set(results)) == 1 and results[0].exists()
    names = sorted(p.name for p in cache.iterdir())
    assert names == sorted([results[0].name, results[0].name + ".build.log", "rootfs.lock"])
    dest = cache.parent / "x"
    images.extract_rootfs(results[0], dest)
    assert (dest / "etc/hostname").read_text() == "fake\n"


def test_crashed_build_leaves_no_tarball(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "_build_rootfs_tree", _crashing_build)
    with pytest.raises(RuntimeError, match="boom") as ei:
        images.ensure_rootfs()
    assert "last lines of" in str(ei.value)
    names = sorted(p.name for p in cache.iterdir())
    assert names == [images.rootfs_tarball_path().name + ".build.log", "rootfs.lock"]


def test_key_follows_dependencies_and_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    key = images.rootfs_key()
    assert images.rootfs_key() == key
    deps = images.runtime_dependencies()
    assert deps and any(d.startswith("pyyaml") for d in deps)
    monkeypatch.setattr(images, "runtime_dependencies", lambda: [*deps, "extra>=1"])
    assert images.rootfs_key() != key
    monkeypatch.undo()
    monkeypatch.setattr(images, "INCLUDE", images.INCLUDE + ",curl")
    assert images.rootfs_key() != key
    monkeypatch.undo()
    monkeypatch.setattr(images, "_write_image_files", _fake_build)  # recipe code changed
    assert images.rootfs_key() != key
