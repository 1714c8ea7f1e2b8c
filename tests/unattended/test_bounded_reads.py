"""Issue 22: every file we read is read without blocking, with a size limit, and no JSON nested
deeper than ours: run records, backup records, env files (the record store and the env-file
reader are system/records.py and shell/env_file.py; the metrics file: test_metrics.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from reconciler.app.backup import BackupRecord, append_record
from reconciler.app.backup import read_records as read_backups
from reconciler.shell.env_file import read_env_file
from reconciler.unattended.place import StatePlace
from reconciler.unattended.runs import RunRecord, read_records
from reconciler.unattended.runs import append_record as append_run

DEEP = "[" * 50_000 + "]" * 50_000


def test_a_50000_deep_line_in_runs_jsonl_is_skipped_not_a_recursion_error(tmp_path: Path) -> None:
    record = RunRecord(start="2026-01-01T00:00:00+00:00", end="2026-01-01T00:00:01+00:00",
                       result="converged", interactive=False, pid=1, user="u", spec_path="/s")  # fmt: skip
    append_run(tmp_path, record)
    with open(tmp_path / "runs.jsonl", "a") as out:
        out.write('{"a": ' + DEEP + "}\n")
    assert [r.result for r in read_records(tmp_path)] == ["converged"]


def test_backup_records_skip_a_deep_line(tmp_path: Path) -> None:
    place = StatePlace(tmp_path)
    record = BackupRecord(
        "backup", "ops", "2026-01-01T00:00:00+00:00", "2026-01-01T00:01:00+00:00", True
    )
    append_record(place, record)
    with open(tmp_path / "backups.jsonl", "a") as out:
        out.write(DEEP + "\n")
    assert read_backups(place) == [record]


@pytest.mark.parametrize("plant", ["fifo", "dev-zero", "symlink", "large"])
def test_an_env_file_is_never_read_unbounded(tmp_path: Path, plant: str) -> None:
    path = tmp_path / "restic.env"
    if plant == "fifo":
        os.mkfifo(path)
    elif plant == "dev-zero":
        path.symlink_to("/dev/zero")
    elif plant == "symlink":
        (tmp_path / "real.env").write_text("RESTIC_PASSWORD=x\n")
        path.symlink_to(tmp_path / "real.env")
    else:
        path.write_text("A=" + "x" * (1 << 20) + "\n")
    started = time.monotonic()
    with pytest.raises((OSError, ValueError)):
        read_env_file(path, None, None)
    assert time.monotonic() - started < 5


def test_backups_jsonl_has_one_reader_the_probe_s(tmp_path: Path) -> None:
    # `backup`'s status (app/backup.read_records) and the plan's history probe
    # (facts/backup.parse_history) read the store's lines through one parser: the same lines,
    # the same records, the same lines skipped.
    from reconciler.app import backup as app_backup
    from reconciler.facts import backup as facts_backup

    assert app_backup.parse_records is facts_backup.parse_records
    place = StatePlace(tmp_path)
    ok = BackupRecord(
        "backup", "ops", "2026-01-01T00:00:00+00:00", "2026-01-01T00:01:00+00:00", True
    )
    failed = BackupRecord(
        "backup", "ops", "2026-01-02T00:00:00+00:00", "2026-01-02T00:01:00+00:00", False
    )
    verified = BackupRecord("verify", "ops", "2026-01-03T00:00:00+00:00", "2026-01-03T00:01:00+00:00", True)  # fmt: skip
    for record in (ok, failed, verified):
        append_record(place, record)
    with open(tmp_path / "backups.jsonl", "a") as out:
        # a newer writer's extra field is ignored; no `ok`, a profile that is not text: skipped
        out.write(
            '{"kind": "backup", "profile": "dev", "start": "s", "end": "e", "ok": true, "new": 1}\n'
        )
        out.write('{"kind": "backup", "profile": "ops", "start": "s", "end": "e"}\n')
        out.write('{"kind": "backup", "profile": 7, "start": "s", "end": "e", "ok": true}\n')
    dev = BackupRecord("backup", "dev", "s", "e", True)
    assert read_backups(place) == [ok, failed, verified, dev]
    text = (tmp_path / "backups.jsonl").read_text()
    history = facts_backup.parse_history(text, 0.0)
    assert history.of("ops").last_success == ok.end and history.of("ops").last_failure == failed.end
    assert history.of("dev").last_success == "e" and [p.profile for p in history.profiles] == [
        "dev",
        "ops",
    ]
