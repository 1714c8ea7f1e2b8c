"""The machine-wide caches: one build under concurrency, nothing half-written after a crash,
and a new key when the recipe or the dependency list changes (no debootstrap run here)."""

from __future__ import annotations

import json
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


# ---------------------------------------------------------------------------- npm cache


def _fake_fill(work: Path, node_bin: Path) -> dict[str, float]:
    import time

    BUILDS.append(str(work))
    time.sleep(0.5)
    (work / "cache/_cacache").mkdir(parents=True)
    (work / "npm/bin").mkdir(parents=True)
    (work / "npm/bin/npm-cli.js").write_text("// fake\n")
    return {"npm": 0.5}


@pytest.fixture
def npm_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(images, "ensure_gateway", lambda: cache / "gateway")
    return cache


def test_npm_cache_concurrent_fills_fill_once(
    npm_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images, "_fill_npm_cache", _fake_fill)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(images.ensure_npm_cache())) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(BUILDS) == 1
    assert len(set(results)) == 1 and results[0] == images.npm_cache_path()
    done = json.loads((results[0] / ".complete").read_text())
    assert done["sets"] == images.NPM_CACHE_SETS
    assert not [p for p in npm_cache.iterdir() if p.name.startswith(".npm-cache-tmp-")]


def test_npm_cache_crashed_fill_leaves_nothing(
    npm_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(work: Path, node_bin: Path) -> dict[str, float]:
        (work / "cache").mkdir()
        raise RuntimeError("registry unreachable")

    monkeypatch.setattr(images, "_fill_npm_cache", crash)
    with pytest.raises(RuntimeError, match="registry unreachable"):
        images.ensure_npm_cache()
    assert not images.npm_cache_path().exists()
    assert not [p for p in npm_cache.iterdir() if p.name.startswith(".npm-cache-tmp-")]


def test_npm_cache_key_follows_the_sets_and_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    key = images.npm_cache_key()
    assert images.npm_cache_key() == key
    sets = dict(images.NPM_CACHE_SETS)
    sets["extra"] = images.gateway_package_json("openclaw", "2026.2.2")
    monkeypatch.setattr(images, "NPM_CACHE_SETS", sets)
    assert images.npm_cache_key() != key
    monkeypatch.undo()
    monkeypatch.setattr(images, "NPM_SETTINGS", {**images.NPM_SETTINGS, "omit": "optional"})
    assert images.npm_cache_key() != key


def test_npmrc_is_offline_from_the_bound_cache_with_the_fill_settings() -> None:
    lines = dict(line.split("=", 1) for line in images.npmrc().splitlines())
    assert lines["offline"] == "true" and lines["cache"] == "/opt/npm-cache/cache"
    for k, v in images.NPM_SETTINGS.items():
        assert lines[k] == v


def test_npm_cache_sets_are_what_the_reconciler_installs() -> None:
    """The cache holds the dependency sets the reconciler's package.json asks for, for the
    versions the update scenario uses (a mismatch would fail the offline install: ENOTCACHED)."""
    from reconciler.gateway.node import package_json as node_package_json
    from reconciler.gateway.versions import package_json
    from reconciler.spec.loader import load_spec

    spec = load_spec(Path(__file__).parent / "specs/updates.yaml")
    node = f"node-{images.NODE24_VERSION}"
    assert json.loads(node_package_json(images.NODE24_VERSION)) == images.NPM_CACHE_SETS[node]
    for label, expected in images.NPM_CACHE_SETS.items():
        if label == node:
            continue
        version = label.removeprefix("openclaw-")
        written = json.loads(package_json(spec, version))
        assert written["dependencies"] == expected["dependencies"], label
        assert written.get("overrides") == expected["overrides"], label
    assert spec.runtime.gateway.version == images.OPENCLAW_WORKING[0]
