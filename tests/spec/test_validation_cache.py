"""The spec cache: a spec that passed is not parsed and checked again, and nothing else is."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reconciler.spec import SpecInvalid, checking, load_spec, validation_cache
from reconciler.spec.schema_file import schema_text

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "specs" / "vm102.yaml"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(validation_cache.DISABLE_ENV, raising=False)
    monkeypatch.setattr(validation_cache, "_writes_allowed", True)  # as in an apply
    return tmp_path / "cache" / "reconciler" / "specs"


def test_read_only_runs_store_nothing(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """plan, probe, validate and dry runs leave the user's home as it was (the dry-run law)."""
    monkeypatch.setattr(validation_cache, "_writes_allowed", False)
    load_spec(_spec(tmp_path))
    assert not cache.exists()


def _spec(tmp_path: Path, text: str | None = None) -> Path:
    path = tmp_path / "host.yaml"
    path.write_text(SEED.read_text() if text is None else text)
    return path


def _no_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(raw: bytes, filename: str, *, schema_checked: bool) -> None:
        raise AssertionError("validated again")

    monkeypatch.setattr(checking, "_validated", refuse)


def test_a_spec_that_passed_is_read_from_the_cache(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _spec(tmp_path)
    first = load_spec(path)
    entries = list(cache.iterdir())
    assert len(entries) == 1
    assert oct(entries[0].stat().st_mode & 0o777) == "0o600"
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    _no_validation(monkeypatch)
    assert load_spec(path) == first


def test_other_bytes_are_validated_again(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_spec(_spec(tmp_path))
    _no_validation(monkeypatch)
    with pytest.raises(AssertionError, match="validated again"):
        load_spec(_spec(tmp_path, SEED.read_text() + "# a comment changes the bytes\n"))


def test_a_failing_spec_is_never_stored_and_fails_every_time(cache: Path, tmp_path: Path) -> None:
    bad = _spec(tmp_path, SEED.read_text().replace("port: 18809", "port: eighteen"))
    for _ in range(2):
        with pytest.raises(SpecInvalid, match="port"):
            load_spec(bad)
    assert not cache.exists() or not list(cache.iterdir())


@pytest.mark.parametrize("mode", [0o770, 0o777])
def test_a_directory_others_can_write_to_is_not_believed(
    cache: Path, tmp_path: Path, mode: int
) -> None:
    path = _spec(tmp_path)
    good = load_spec(path)
    # Plant data that never passed validation under the real key.
    (entry,) = cache.iterdir()
    planted = json.loads(entry.read_text())
    planted["profiles"]["ops"]["port"] = 1
    entry.write_text(json.dumps(planted))
    cache.chmod(mode)
    assert load_spec(path) == good
    cache.chmod(0o700)
    assert load_spec(path).profiles != good.profiles  # proves the plant was at the right key


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the entry to another user")
def test_an_entry_owned_by_someone_else_is_not_believed(cache: Path, tmp_path: Path) -> None:
    path = _spec(tmp_path)
    good = load_spec(path)
    (entry,) = cache.iterdir()
    planted = json.loads(entry.read_text())
    planted["profiles"]["ops"]["port"] = 1
    entry.write_text(json.dumps(planted))
    os.chown(entry, 4242, 4242)
    assert load_spec(path) == good


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the directory to another user")
def test_root_does_not_believe_a_directory_a_user_owns(cache: Path, tmp_path: Path) -> None:
    # Root running with a user's cache (sudo keeping HOME or XDG_CACHE_HOME): the entry is
    # root's, but the user owns the directory and could rename another spec's entry, or any
    # root-owned file, to this key. Only a directory of root's own is believed.
    path = _spec(tmp_path)
    good = load_spec(path)
    (entry,) = cache.iterdir()
    planted = json.loads(entry.read_text())
    planted["profiles"]["ops"]["port"] = 1
    entry.write_text(json.dumps(planted))
    os.chown(cache, 4242, 4242)  # still 0700, the entry still root's
    assert load_spec(path) == good
    os.chown(cache, 0, 0)
    assert load_spec(path).profiles != good.profiles  # proves the plant was at the right key


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2]"])
def test_a_broken_entry_is_a_miss(cache: Path, tmp_path: Path, content: str) -> None:
    path = _spec(tmp_path)
    good = load_spec(path)
    (entry,) = cache.iterdir()
    entry.write_text(content)
    assert load_spec(path) == good


def test_a_symlinked_entry_is_not_followed(cache: Path, tmp_path: Path) -> None:
    path = _spec(tmp_path)
    good = load_spec(path)
    (entry,) = cache.iterdir()
    elsewhere = tmp_path / "elsewhere.json"
    planted = json.loads(entry.read_text())
    planted["profiles"]["ops"]["port"] = 1
    elsewhere.write_text(json.dumps(planted))
    entry.unlink()
    entry.symlink_to(elsewhere)
    assert load_spec(path) == good


def test_no_cache_when_disabled_or_without_a_home(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(validation_cache.DISABLE_ENV, "1")
    load_spec(_spec(tmp_path))
    assert not cache.exists()
    assert validation_cache.cache_dir({"XDG_CACHE_HOME": "relative", "HOME": "also"}) is None
    assert validation_cache.cache_dir({"HOME": "/home/u"}) == Path(
        "/home/u/.cache/reconciler/specs"
    )


def test_an_unwritable_cache_is_no_error(cache: Path, tmp_path: Path) -> None:
    cache.parent.parent.mkdir(parents=True)
    cache.parent.write_text("a file where the directory should be")
    assert load_spec(_spec(tmp_path)).host.name == "vm102"


def test_the_key_covers_code_schema_and_bytes() -> None:
    base = validation_cache.cache_key(b"spec", "schema", "stamp")
    assert base != validation_cache.cache_key(b"spec2", "schema", "stamp")
    assert base != validation_cache.cache_key(b"spec", "schema2", "stamp")
    assert base != validation_cache.cache_key(b"spec", "schema", "stamp2")
    # Parts are length-prefixed: moving bytes from one part to the next is another key.
    assert validation_cache.cache_key(b"ab", "c", "s") != validation_cache.cache_key(
        b"a", "bc", "s"
    )


def test_the_code_stamp_changes_with_the_spec_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "reconciler"
    (package / "spec").mkdir(parents=True)
    (package / "gateway").mkdir()
    rules = package / "spec" / "semantic.py"
    rules.write_text("RULES = 1\n")
    (package / "gateway" / "naming.py").write_text("")
    (package / "semver.py").write_text("")
    monkeypatch.setattr(validation_cache, "_PACKAGE", package)
    before = validation_cache.code_stamp()
    rules.write_text("RULES = 22\n")
    assert validation_cache.code_stamp() != before
    # A section's rules, in its own sub-package, count too.
    section = package / "spec" / "sections" / "backup"
    section.mkdir(parents=True)
    (section / "rules.py").write_text("RULES = ()\n")
    before = validation_cache.code_stamp()
    (section / "rules.py").write_text("RULES = (1,)\n")
    assert validation_cache.code_stamp() != before


def test_data_json_would_change_is_not_stored(tmp_path: Path) -> None:
    validation_cache.store("k", tmp_path / "d", {"profiles": {1: "int key"}})
    assert not (tmp_path / "d" / "k.json").exists()


def test_only_the_newest_entries_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validation_cache, "_writes_allowed", True)
    directory = tmp_path / "d"
    for i in range(validation_cache.MAX_ENTRIES + 5):
        validation_cache.store(f"k{i}", directory, {"i": i})
        os.utime(directory / f"k{i}.json", ns=(i * 10**9, i * 10**9))
    names = {p.name for p in directory.iterdir()}
    assert len(names) == validation_cache.MAX_ENTRIES
    assert f"k{validation_cache.MAX_ENTRIES + 4}.json" in names and "k0.json" not in names


def test_a_cached_plan_run_imports_neither_the_parser_nor_the_schema_check(tmp_path: Path) -> None:
    """What the cache is for: the timer's next run skips the slowest imports. jsonschema is
    never imported (reconciler/spec/schema_validator.py checks the schema)."""
    script = textwrap.dedent(
        f"""
        import sys
        from reconciler.spec import load_spec, validation_cache
        validation_cache.allow_writes()  # as the timer's apply does
        load_spec({str(_spec(tmp_path))!r})
        checks = ("yaml", "reconciler.spec.schema_validator", "jsonschema")
        print(sorted(m for m in checks if m in sys.modules))
        """
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop(validation_cache.DISABLE_ENV, None)
    runs = [
        subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    ]
    assert runs == ["['reconciler.spec.schema_validator', 'yaml']", "[]"]


def test_schema_text_is_what_the_key_hashes() -> None:
    assert schema_text() == (ROOT / "schemas" / "spec.schema.json").read_text(encoding="utf-8")


def test_no_stamp_and_no_cache_without_files_of_its_own(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the zipapp shipped to remote targets no file tells one build from the next."""
    monkeypatch.setattr(validation_cache, "_PACKAGE", tmp_path / "inside-a-zip")
    assert validation_cache.code_stamp() is None
    load_spec(_spec(tmp_path))
    assert not cache.exists()


def test_a_schema_check_passed_elsewhere_is_not_cached(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _spec(tmp_path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setattr(checking, "SCHEMA_CHECKED", {digest})
    load_spec(path)
    assert not cache.exists()
