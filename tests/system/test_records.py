"""The one JSON-lines record store (system/records.py) under run and backup records: locked
appends from several processes, rotation to a bounded size, bounded reads that skip a line
nested 50 000 deep (a RecursionError before) or torn by a crash, FIFOs and symlinks refused."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from reconciler.app.backup import BackupRecord
from reconciler.app.backup import append_record as append_backup
from reconciler.app.backup import read_records as read_backups
from reconciler.bounded import InputRefused
from reconciler.facts.backup import parse_history
from reconciler.system.records import RecordFile, parse_line
from reconciler.unattended.place import StatePlace
from reconciler.unattended.runs import RunRecord, read_records

DEEP = "[" * 50_000 + "]" * 50_000
DEEP_OBJECT = '{"a":' * 50_000 + "1" + "}" * 50_000


def _backup(n: int) -> BackupRecord:
    return BackupRecord("backup", "ops", f"2026-12-07T10:00:{n % 60:02d}+00:00", "x", True)


def test_a_50000_deep_line_is_skipped_not_a_recursion_error(tmp_path: Path) -> None:
    good = RunRecord("2026-12-07T10:00:00+00:00", "2026-12-07T10:00:01+00:00", "converged")
    (tmp_path / "runs.jsonl").write_text(f"{DEEP}\n{DEEP_OBJECT}\n{good.to_json()}\n")
    assert read_records(tmp_path) == [good]
    append_backup(StatePlace(tmp_path), _backup(1))
    with (tmp_path / "backups.jsonl").open("a") as handle:
        handle.write(f"{DEEP_OBJECT}\n{DEEP}\n")
    assert read_backups(StatePlace(tmp_path)) == [_backup(1)]
    history = parse_history(f"{DEEP_OBJECT}\n{json.dumps({'kind': 'backup'})}\n", 0.0)
    assert history.profiles == ()
    assert parse_line(DEEP, "x") is None and parse_line("x" * 300_000, "x") is None


def test_backup_records_rotate_to_a_bounded_size(tmp_path: Path) -> None:
    store = RecordFile(tmp_path, "backups.jsonl", max_bytes=2_000, keep=2)
    for n in range(200):
        store.append(json.dumps({"n": n, "pad": "x" * 50}))
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["backups.jsonl", "backups.jsonl.1", "backups.jsonl.2"]
    assert all(p.stat().st_size <= 2_000 for p in tmp_path.iterdir())
    numbers = [json.loads(line)["n"] for _, lines in store.read() for line in lines]
    assert numbers == sorted(numbers) and numbers[-1] == 199


def _writer(directory: str, who: int) -> None:
    store = RecordFile(Path(directory), "backups.jsonl", max_bytes=20_000)
    for n in range(150):
        store.append(json.dumps({"who": who, "n": n, "pad": "x" * 40}))


def test_appends_from_several_processes_land_whole(tmp_path: Path) -> None:
    workers = [
        multiprocessing.get_context("fork").Process(target=_writer, args=(str(tmp_path), w))
        for w in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    store = RecordFile(tmp_path, "backups.jsonl", max_bytes=20_000)
    lines = [line for _, chunk in store.read() for line in chunk]
    parsed = [parse_line(line, "t") for line in lines]
    assert all(p is not None for p in parsed)  # no torn or interleaved line
    for who in range(3):  # rotation may drop the oldest, never reorders one writer's lines
        mine = [p["n"] for p in parsed if p is not None and p["who"] == who]
        assert mine == sorted(mine) and mine[-1] == 149


def test_a_fifo_or_symlink_in_place_of_the_records_is_refused_without_hanging(
    tmp_path: Path,
) -> None:
    os.mkfifo(tmp_path / "backups.jsonl")
    with pytest.raises(InputRefused, match="FIFO"):
        append_backup(StatePlace(tmp_path), _backup(1))
    with pytest.raises(InputRefused):
        read_backups(StatePlace(tmp_path))
    other = tmp_path / "other"
    other.mkdir()
    (other / "elsewhere").write_text("")
    (other / "backups.jsonl").symlink_to(other / "elsewhere")
    with pytest.raises(OSError):
        append_backup(StatePlace(other), _backup(1))
    assert (other / "elsewhere").read_text() == ""


def test_the_switch_memory_files_are_typed_and_bounded(tmp_path: Path) -> None:
    """The user's switch memory (facts/switches.py): a 50 000-deep file is "not ours", never a
    RecursionError; the intent round-trips through its one typed record."""
    from reconciler.core.probe import ProbeFailed
    from reconciler.facts.switches import (
        FailedInstall,
        SwitchIntent,
        encode_failed_installs,
        parse_bad_versions,
        parse_failed_installs,
        parse_intent,
        parse_switched,
    )

    with pytest.raises(ProbeFailed, match="not a bad-version record"):
        parse_bad_versions(DEEP_OBJECT, "gateway-bad-versions.json")
    assert parse_switched(DEEP) == ()
    assert parse_failed_installs(DEEP_OBJECT) == ()
    failed = FailedInstall("2026.2.1", "ab" * 32, "2026-12-07T10:00:00+00:00", "npm error ETARGET")
    assert parse_failed_installs(encode_failed_installs((failed,))) == (failed,)
    assert parse_intent("ops", DEEP_OBJECT) is None
    intent = SwitchIntent("2026.1.24-3", "2026.2.1", "2026-12-07T10:00:00+00:00", "u", 0o644, None)
    assert SwitchIntent.parse(intent.to_json()) == intent
    interrupted = parse_intent("ops", intent.to_json())
    assert interrupted is not None and interrupted.to_version == "2026.2.1"
    with pytest.raises(ValueError):
        SwitchIntent.parse('{"to": "1", "started_at": "x", "unit_mode": "0644; rm"}')
