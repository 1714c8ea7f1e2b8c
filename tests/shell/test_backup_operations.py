"""The backup use cases' operations as the runner carries them out (shell/backup.py), with the
commands scripted: what runs in which order, what is skipped after a failure, and that every
file effect goes through the runner's own file operations."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.core.action import (
    BackupProfile,
    Operation,
    RestoreInPlace,
    RestoreSnapshot,
)
from reconciler.core.command import Command, CommandResult
from reconciler.core.day2 import BackupReport, RestoreReport
from reconciler.core.host import Account, HostContext
from reconciler.shell.runner import HostRunner, OperationResult

ME = Account.current()
SUMMARY = '{"message_type":"summary","snapshot_id":"abc","files_new":1}\n'


class Scripted(HostRunner):
    """A runner whose commands answer from a script (first word after systemctl --user, or
    restic's subcommand) and that keeps what it was asked, in order."""

    def __init__(self, answers: dict[str, tuple[int, str]], port_up: bool = True) -> None:
        host = HostContext(hostname="h", invoker=ME, user=ME, user_name=ME.name)
        super().__init__(host, port_answers=lambda port: port_up, sleep=lambda s: None)
        self.answers = answers
        self.asked: list[str] = []

    def run(self, command: Command) -> CommandResult:
        argv = command.argv
        words = argv[2:] if argv[0] == "systemctl" else argv[1:]  # past `systemctl --user`
        word = words[0]
        self.asked.append(" ".join(words))
        code, out = self.answers.get(word, (0, ""))
        return CommandResult(command, argv, code, stdout=out, stderr="" if code == 0 else "boom")

    def execute(self, operation: Operation) -> OperationResult:
        if not isinstance(operation, BackupProfile | RestoreSnapshot | RestoreInPlace):
            self.asked.append(operation.type_name)
        return super().execute(operation)


def restic(*args: str) -> Command:
    return Command(("restic", *args), scope="user", mutating=True)


def backup_op(tmp: Path, unit: str | None = "gw.service", forget: bool = True) -> BackupProfile:
    return BackupProfile(
        "ops",
        (tmp / "state", tmp / "workspace"),
        restic("backup", "--json"),
        restic("forget", "--prune") if forget else None,
        unit,
    )


def report(runner: HostRunner, op: Operation) -> BackupReport | RestoreReport:
    done = runner.execute(op)
    assert done.backup is not None, done.detail
    return done.backup


def test_a_stopped_copy_of_the_paths_that_exist_then_forget(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()  # no workspace yet
    runner = Scripted({"backup": (0, SUMMARY)})
    done = report(runner, backup_op(tmp_path))
    assert runner.asked == [
        "is-active --quiet gw.service",
        "stop gw.service",
        f"backup --json {tmp_path / 'state'}",
        "start gw.service",
        "forget --prune",
    ]
    assert isinstance(done, BackupReport) and done.ok and done.downtime_s is not None


def test_a_gateway_that_cannot_stop_is_not_copied_and_a_live_one_is_not_stopped(
    tmp_path: Path,
) -> None:
    (tmp_path / "state").mkdir()
    runner = Scripted({"stop": (1, "")})
    done = report(runner, backup_op(tmp_path))
    assert runner.asked == ["is-active --quiet gw.service", "stop gw.service"]
    assert done.problem.startswith("cannot stop gw.service: exit 1") and not done.ok
    live = Scripted({"backup": (0, SUMMARY)})
    assert report(live, backup_op(tmp_path, unit=None, forget=False)).ok
    assert live.asked == [f"backup --json {tmp_path / 'state'}"]


def test_nothing_is_forgotten_after_a_failed_or_summaryless_backup(tmp_path: Path) -> None:
    (tmp_path / "workspace").mkdir()
    for answer in ((3, SUMMARY), (0, "no summary\n")):
        runner = Scripted({"backup": answer, "is-active": (3, "")})
        done = report(runner, backup_op(tmp_path))
        assert runner.asked == [
            "is-active --quiet gw.service",
            f"backup --json {tmp_path / 'workspace'}",
        ]
        assert isinstance(done, BackupReport) and done.forget is None and done.downtime_s is None


def test_a_start_that_fails_is_reported_and_missing_paths_run_nothing(tmp_path: Path) -> None:
    runner = Scripted({"backup": (0, SUMMARY), "start": (1, "")})
    assert report(runner, backup_op(tmp_path)) == BackupReport(missing=True)
    assert runner.asked == []
    (tmp_path / "state").mkdir()
    done = report(runner, backup_op(tmp_path))
    assert isinstance(done, BackupReport) and done.start_error.startswith("cannot start gw")


def in_place_op(tmp: Path) -> RestoreInPlace:
    return RestoreInPlace(
        "ops",
        "gw.service",
        (tmp / "state", tmp / "workspace"),
        ".before-restore-T",
        tmp / "state",
        restic("restore", "abc", "--target", "/"),
        18789,
        1.0,
        None,
    )


def test_in_place_moves_aside_restores_fixes_the_mode_and_waits_for_the_gateway(
    tmp_path: Path,
) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "workspace").mkdir()
    restore = restic("restore", "abc", "--target", "/")

    class Restoring(Scripted):
        def run(self, command: Command) -> CommandResult:
            if command == restore:  # what restic does: the snapshot's state comes back
                (tmp_path / "state").mkdir(mode=0o755)
            return super().run(command)

    runner = Restoring({})
    done = report(runner, in_place_op(tmp_path))
    assert runner.asked == [
        "is-active --quiet gw.service",
        "stop gw.service",
        "move_aside",
        "move_aside",
        "restore abc --target /",
        "ensure_directory",
        "start gw.service",
        "wait_for_port",
    ]
    assert isinstance(done, RestoreReport) and done.ok and done.stopped
    assert done.aside == (
        tmp_path / "state.before-restore-T",
        tmp_path / "workspace.before-restore-T",
    )
    assert os.stat(tmp_path / "state").st_mode & 0o777 == 0o700


def test_in_place_reports_a_gateway_that_does_not_answer(tmp_path: Path) -> None:
    done = report(Scripted({}, port_up=False), in_place_op(tmp_path))
    assert isinstance(done, RestoreReport) and done.restored and not done.healthy
    assert not done.ok


def test_in_place_stops_before_restic_when_a_path_cannot_be_moved(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state.before-restore-T").mkdir()  # taken: the move would clobber it
    runner = Scripted({})
    done = report(runner, in_place_op(tmp_path))
    assert done.problem.startswith(f"ops: cannot move {tmp_path / 'state'} aside")
    assert "restore abc --target /" not in runner.asked and "start gw.service" not in runner.asked


def test_a_staging_restore_needs_a_fresh_directory(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    restore: Callable[[], RestoreSnapshot] = lambda: RestoreSnapshot(  # noqa: E731
        staging, restic("restore", "abc", "--target", str(staging)), None
    )
    runner = Scripted({})
    first = report(runner, restore())
    assert first.ok and runner.asked == ["ensure_directory", f"restore abc --target {staging}"]
    assert staging.stat().st_mode & 0o777 == 0o700
    (staging / "left").write_text("x")
    again = Scripted({})
    second = report(again, restore())
    assert second.problem == f"{staging} is not empty: restore into a fresh directory"
    assert again.asked == ["ensure_directory"]


def test_verify_restores_into_a_scratch_directory_compares_and_removes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`VerifySnapshot`: restic restores into a fresh scratch directory (its `--target`
    appended), every listed file is compared with what came back, and the directory is gone
    afterwards, whatever the verdict."""
    import tempfile

    from reconciler.core.action import VerifySnapshot
    from reconciler.core.day2 import VerifyReport

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where mkdtemp makes the scratch
    listing = (
        '{"struct_type":"node","type":"file","path":"/s/a.json","size":3,"mode":384}\n'
        '{"struct_type":"node","type":"file","path":"/s/b.json","size":2,"mode":384}\n'
    )
    scratch: list[Path] = []

    class Restoring(Scripted):
        def run(self, command: Command) -> CommandResult:
            if command.argv[1] == "restore":  # what restic does: a.json comes back, b.json not
                root = Path(command.argv[-1])
                scratch.append(root)
                (root / "s").mkdir()
                (root / "s/a.json").write_text("abc")
                os.chmod(root / "s/a.json", 0o600)
            return super().run(command)

    op = VerifySnapshot(
        "ops", "abcdef0123", "abcdef01", restic("restore", "abcdef0123", "--verify"), restic("ls")
    )
    runner = Restoring({"ls": (0, listing)})
    done = report(runner, op)
    (root,) = scratch
    assert root.parent == tmp_path and root.name.startswith("reconciler-verify-")
    assert runner.asked == [
        "verify_snapshot",  # Scripted notes the operations it is handed
        f"restore abcdef0123 --verify --target {root}",
        "ls",
    ]
    assert done == VerifyReport(("/s/b.json: missing after restore",)) and not done.ok
    assert not root.exists()
    failing = Restoring({"restore": (1, "")})
    refused = report(failing, op)
    assert refused.problem.startswith("restic restore --verify of abcdef01 failed: exit 1")
    assert failing.asked[2:] == [] and not scratch[-1].exists()  # no ls
