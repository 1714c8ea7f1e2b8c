"""`reconciler backup ...` with the real restic on local temporary repositories: init (never
re-initialised, wrong password refused), run (tags, incremental, excludes, retention), list,
verify (passes, and fails loudly on a corrupted pack file), restore (staging and in place,
byte-identical with modes), secret files checked first, and the password never in any output
or file the reconciler writes."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import secrets
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from reconciler.app.backup import read_records
from reconciler.app.context import AppContext
from reconciler.cli import cli
from reconciler.spec import load_spec
from reconciler.spec.model import Spec
from reconciler.unattended.place import StatePlace

if shutil.which("restic") is None:
    if os.environ.get("RECONCILER_E2E_REQUIRED"):
        raise RuntimeError("restic is required (apt-get install restic)")
    pytest.skip("restic is not installed (apt-get install restic)", allow_module_level=True)

USER = getpass.getuser()
HOST = socket.gethostname()


@dataclass
class World:
    root: Path
    spec: Path
    password: str
    outputs: list[str]

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def gateway_state(self) -> Path:
        return self.root / "home" / ".clawdbot-ops"

    @property
    def workspace(self) -> Path:
        return self.root / "home" / "clawd-ops"

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    def load(self, path: Path) -> Spec:
        """The spec file, its profile moved to this test's directory (spec rules keep a
        profile out of /tmp, where pytest's directories are)."""
        spec = load_spec(path)
        (ops,) = spec.profiles
        moved = replace(ops, state_dir=str(self.gateway_state), workspace=str(self.workspace))
        return replace(spec, profiles=(moved,))

    def cli(self, *args: str, recording: list[object] | None = None) -> Result:
        """Run the CLI on this world; `recording`: note every operation the runner executes."""
        app = AppContext(state_dir=lambda: self.state, spec_loader=self.load)
        if recording is not None:
            app = replace(app, make_runner=_recording_runner(recording))
        result = CliRunner().invoke(cli, list(args), obj=app, catch_exceptions=False)
        self.outputs.append(result.output)
        return result

    def write_spec(self, **backup: object) -> None:
        fields = {
            "repository": str(self.repo),
            "password_file": str(self.root / "password"),
            "consistency": "live",
            **backup,
        }
        body = "".join(f"  {k}: {json.dumps(v)}\n" for k, v in fields.items())
        self.spec.write_text(
            "apiVersion: reconciler/v1\n"
            f"host: {{name: {HOST}, user: {USER}}}\n"
            "profiles:\n"
            "  ops: {port: 18789}\n"
            f"backup:\n{body}"
        )


def _fill(world: World) -> None:
    state = world.gateway_state
    (state / "credentials").mkdir(parents=True, mode=0o700)
    (state / "agents/main/sessions").mkdir(parents=True)
    (state / "clawdbot.json").write_text('{"gateway": {"port": 18789}}\n')
    os.chmod(state / "clawdbot.json", 0o600)
    (state / "credentials/whatsapp.json").write_text('{"creds": "ratchet"}\n')
    os.chmod(state / "credentials/whatsapp.json", 0o600)
    for i in range(30):
        (state / f"agents/main/sessions/s{i}.jsonl").write_text(f'{{"turn": {i}}}\n' * (i + 1))
    (state / "logs").mkdir()
    (state / "logs/gateway.log").write_text("log line\n")
    (state / "debug.log").write_text("rebuilt\n")
    world.workspace.mkdir(parents=True)
    (world.workspace / "AGENTS.md").write_text("# agents\n")
    script = world.workspace / "tool.sh"
    script.write_text("#!/bin/sh\n")
    os.chmod(script, 0o750)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path, tmp_path / "spec.yaml", "pw-" + secrets.token_hex(16), [])
    (tmp_path / "password").write_text(w.password + "\n")
    os.chmod(tmp_path / "password", 0o600)
    w.write_spec()
    _fill(w)
    yield w
    _assert_password_nowhere(w)


def _recording_runner(executed: list[object]) -> Any:
    """A `make_runner` whose runner appends every operation to `executed`, then executes it."""
    from reconciler.shell.runner import HostRunner

    class Recording(HostRunner):
        def execute(self, operation):  # type: ignore[no-untyped-def]
            executed.append(operation)
            return super().execute(operation)

    return lambda host, mutating: Recording(host)


def _assert_password_nowhere(world: World) -> None:
    """Neither the output of any command nor any file we wrote holds the password."""
    needle = world.password.encode()
    for output in world.outputs:
        assert world.password not in output
    if world.state.exists():
        for path in world.state.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert needle not in path.read_bytes(), f"{path} holds the password"


def _tree(root: Path) -> dict[str, tuple[str, int]]:
    """relative path -> (sha256 or 'dir', mode) of everything under root."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        out[str(path.relative_to(root))] = (digest, st.st_mode & 0o7777)
    return out


def _snapshots(world: World) -> list[dict[str, object]]:
    result = world.cli("backup", "list", str(world.spec), "--json")
    assert result.exit_code == 0, result.output
    listed: list[dict[str, object]] = json.loads(result.output)
    return listed


def test_run_without_a_repository_says_to_init(world: World) -> None:
    result = world.cli("backup", "run", str(world.spec))
    assert result.exit_code == 1
    assert "no restic repository at" in result.output
    assert "backup init" in result.output
    assert not world.repo.exists()


def test_init_once_then_never_again(world: World) -> None:
    assert world.cli("backup", "init", str(world.spec)).exit_code == 0
    config = (world.repo / "config").read_bytes()
    again = world.cli("backup", "init", str(world.spec))
    assert again.exit_code == 0 and "nothing to do" in again.output
    assert (world.repo / "config").read_bytes() == config


def test_a_wrong_password_is_an_error_never_a_reinit(world: World) -> None:
    assert world.cli("backup", "init", str(world.spec)).exit_code == 0
    keys = sorted(p.name for p in (world.repo / "keys").iterdir())
    (world.root / "password").write_text("not-the-password\n")
    for command in ("init", "run"):
        result = world.cli("backup", command, str(world.spec))
        assert result.exit_code == 1
        assert "does not open the repository" in result.output
    assert sorted(p.name for p in (world.repo / "keys").iterdir()) == keys


@pytest.mark.parametrize(
    ("mode", "message"),
    [(0o644, "chmod 600"), (0o640, "chmod 600"), (None, "does not exist")],
)
def test_secret_files_are_checked_before_restic_runs(
    world: World, mode: int | None, message: str
) -> None:
    password = world.root / "password"
    if mode is None:
        password.unlink()
    else:
        os.chmod(password, mode)
    result = world.cli("backup", "init", str(world.spec))
    assert result.exit_code == 1
    assert message in result.output
    assert not world.repo.exists()


def test_a_symlinked_password_file_is_refused(world: World) -> None:
    (world.root / "password").rename(world.root / "real-password")
    (world.root / "password").symlink_to(world.root / "real-password")
    result = world.cli("backup", "init", str(world.spec))
    assert result.exit_code == 1 and "not a regular file" in result.output


def test_environment_file_gives_restic_its_variables(world: World) -> None:
    env = world.root / "restic.env"
    # restic reads RESTIC_COMPRESSION... not in 0.14; RESTIC_CACHE_DIR is: it must be used.
    env.write_text(f"# backend\nexport RESTIC_CACHE_DIR={world.root / 'cache'}\n")
    os.chmod(env, 0o600)
    world.write_spec(environment_file=str(env))
    assert world.cli("backup", "init", str(world.spec)).exit_code == 0
    assert world.cli("backup", "run", str(world.spec)).exit_code == 0
    assert (world.root / "cache").is_dir()
    os.chmod(env, 0o644)
    assert world.cli("backup", "run", str(world.spec)).exit_code == 1


def test_restic_missing_is_a_clear_error(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("reconciler.facts.programs.locate", lambda program, host: None)
    result = world.cli("backup", "run", str(world.spec))
    assert result.exit_code == 1
    assert "apt-get install restic" in result.output


def test_run_tags_excludes_and_is_incremental(world: World) -> None:
    assert world.cli("backup", "init", str(world.spec)).exit_code == 0
    first = world.cli("backup", "run", str(world.spec))
    assert first.exit_code == 0, first.output
    second = world.cli("backup", "run", str(world.spec))
    assert second.exit_code == 0, second.output
    assert " 0 new, 0 changed, " in second.output
    snaps = _snapshots(world)
    assert len(snaps) == 2
    assert all(s["tags"] == ["profile:ops", f"host:{HOST}"] for s in snaps)
    assert all(s["hostname"] == HOST for s in snaps)
    records = read_records(StatePlace(world.state))
    assert [(r.kind, r.profile, r.ok) for r in records] == [("backup", "ops", True)] * 2
    assert records[1].detail["files_new"] == 0 and records[1].detail["files_unmodified"] > 30
    staging = world.root / "staging"
    result = world.cli("backup", "restore", str(world.spec), "ops", "--into", str(staging))
    assert result.exit_code == 0, result.output
    restored = staging / str(world.gateway_state).lstrip("/")
    assert not (restored / "logs").exists() and not (restored / "debug.log").exists()
    assert (restored / "credentials/whatsapp.json").exists()


def test_retention_forgets_and_prunes(world: World) -> None:
    world.write_spec(retention={"keep_last": 1})
    assert world.cli("backup", "init", str(world.spec)).exit_code == 0
    for i in range(3):
        (world.workspace / "note.md").write_text(f"version {i}\n")
        assert world.cli("backup", "run", str(world.spec)).exit_code == 0
    assert len(_snapshots(world)) == 1


def test_verify_passes_then_fails_loudly_on_a_corrupted_pack(world: World) -> None:
    assert world.cli("backup", "init", str(world.spec)).exit_code == 0
    assert world.cli("backup", "run", str(world.spec)).exit_code == 0
    ok = world.cli("backup", "verify", str(world.spec), "--read-data-subset", "100%")
    assert ok.exit_code == 0, ok.output
    assert "every file matches" in ok.output
    packs = sorted((world.repo / "data").rglob("*"), key=lambda p: p.stat().st_size)
    biggest = [p for p in packs if p.is_file()][-1]
    os.chmod(biggest, 0o600)
    data = bytearray(biggest.read_bytes())
    for i in range(100, len(data) - 100, 997):
        data[i] ^= 0xFF
    biggest.write_bytes(bytes(data))
    bad = world.cli("backup", "verify", str(world.spec), "--read-data-subset", "100%")
    assert bad.exit_code == 1
    assert "VERIFY FAILED" in bad.output
    verdicts = [r.ok for r in read_records(StatePlace(world.state)) if r.kind == "verify"]
    assert verdicts == [True, False]


def test_restore_in_place_brings_back_a_wiped_profile_byte_identical(world: World) -> None:
    before_state, before_workspace = _tree(world.gateway_state), _tree(world.workspace)
    assert world.cli("backup", "init", str(world.spec)).exit_code == 0
    assert world.cli("backup", "run", str(world.spec)).exit_code == 0
    shutil.rmtree(world.gateway_state)
    shutil.rmtree(world.workspace / "AGENTS.md", ignore_errors=True)
    (world.workspace / "AGENTS.md").unlink(missing_ok=True)
    result = world.cli("backup", "restore", str(world.spec), "ops", "--in-place")
    assert result.exit_code == 0, result.output
    assert "time travel" in result.output
    expected = {k: v for k, v in before_state.items() if "log" not in k}
    assert _tree(world.gateway_state) == expected
    assert _tree(world.workspace) == before_workspace
    assert (world.gateway_state.stat().st_mode & 0o777) == 0o700
    kept = list(world.root.glob("home/clawd-ops.before-restore-*"))
    assert len(kept) == 1 and not (kept[0] / "AGENTS.md").exists()


def test_restore_of_an_unknown_snapshot_or_profile_is_refused(world: World) -> None:
    assert world.cli("backup", "init", str(world.spec)).exit_code == 0
    assert world.cli("backup", "run", str(world.spec)).exit_code == 0
    wrong = world.cli("backup", "restore", str(world.spec), "ops", "--snapshot", "ffffffff")
    assert wrong.exit_code == 1 and "no snapshots of this profile match" in wrong.output
    other = world.cli("backup", "restore", str(world.spec), "work")
    assert other.exit_code == 64 and "has no profile 'work'" in other.output  # issue 22


def test_status_shows_freshness_per_profile(world: World) -> None:
    before = world.cli("status", str(world.spec))
    assert before.exit_code == 0, before.output
    assert "ops: last backup never, last verified restore never  STALE" in before.output
    assert world.cli("backup", "init", str(world.spec)).exit_code == 0
    assert world.cli("backup", "run", str(world.spec)).exit_code == 0
    assert world.cli("backup", "verify", str(world.spec)).exit_code == 0
    after = world.cli("status", str(world.spec), "--json")
    assert after.exit_code == 0, after.output
    (row,) = json.loads(after.output)["backups"]
    assert row["profile"] == "ops" and row["stale"] is False
    assert row["last_backup"] is not None and row["last_verified"] is not None


def test_freshness_is_stale_after_twice_the_schedule() -> None:
    from datetime import UTC, datetime

    from reconciler.app.backup import BackupRecord, freshness_of
    from reconciler.spec.loader import load_spec_text

    spec = load_spec_text(
        "apiVersion: reconciler/v1\nhost: {name: h, user: u}\nprofiles: {ops: {port: 18789}}\n"
        "backup: {repository: /r, password_file: /p, schedule: 6h}\n",
        "s.yaml",
    )
    record = BackupRecord(
        "backup", "ops", "2026-11-29T00:00:00+00:00", "2026-11-29T00:00:00+00:00", True
    )
    at = datetime(2026, 11, 29, tzinfo=UTC).timestamp()
    assert not freshness_of(spec, [record], at + 12 * 3600)[0].stale
    assert freshness_of(spec, [record], at + 12 * 3600 + 1)[0].stale
    failed = BackupRecord("backup", "ops", record.start, record.end, False)
    assert freshness_of(spec, [failed], at)[0].stale
    # a failed run after the last success is shown; a later success clears it
    later = BackupRecord("backup", "ops", record.end, "2026-11-29T01:00:00+00:00", False)
    assert freshness_of(spec, [record, later], at)[0].last_failure == later.end
    assert freshness_of(spec, [record, later, record], at)[0].last_failure is None


def test_run_takes_the_host_lock_apply_takes(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.unattended.lock import hold_lock, host_lock_path

    assert world.cli("backup", "init", str(world.spec)).exit_code == 0
    monkeypatch.setattr("reconciler.app.backup.LOCK_TIMEOUT_S", 0)
    world.state.mkdir(mode=0o700, exist_ok=True)
    with hold_lock(host_lock_path(world.state), 5, command="reconciler apply (test)"):
        locked = world.cli("backup", "run", str(world.spec))
    assert locked.exit_code == 75, locked.output
    assert read_records(StatePlace(world.state)) == []


def test_run_with_json_log_lines_and_the_backup_metrics(world: World) -> None:
    textfiles = world.root / "textfiles"
    textfiles.mkdir()
    world.spec.write_text(world.spec.read_text() + f"metrics:\n  textfile_dir: {textfiles}\n")
    assert world.cli("backup", "init", str(world.spec)).exit_code == 0
    result = world.cli("backup", "run", str(world.spec), "--log-format", "json")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event"] for e in events] == ["message", "backup", "summary"]
    backup = events[1]
    assert backup["profile"] == "ops" and backup["ok"] is True and backup["snapshot"]
    assert backup["detail"]["files_new"] > 30
    assert events[2] == {
        "event": "summary",
        "command": "backup run",
        "result": "ok",
        "profiles": 1,
        "failed": 0,
    }
    # the metrics textfile: the profile's last success, the time its record says
    (record,) = read_records(StatePlace(world.state))
    from datetime import datetime

    when = int(datetime.fromisoformat(record.end).timestamp())
    text = (textfiles / "reconciler-backup.prom").read_text()
    assert f'reconciler_backup_last_success_timestamp_seconds{{profile="ops"}} {when}' in text
    assert (textfiles / "reconciler-backup.prom").stat().st_mode & 0o777 == 0o644


def test_a_password_in_the_repository_url_is_never_printed(world: World) -> None:
    # issue 22: `rest:https://u:PW@...` reached the output of the backup commands.
    world.write_spec(repository="rest:http://backup:Sh0rtPW@127.0.0.1:9/host")
    for args in (("backup", "init"), ("backup", "list"), ("backup", "run")):
        result = world.cli(*args, str(world.spec))
        assert result.exit_code != 0
        assert "Sh0rtPW" not in result.output, result.output
        assert "rest:http://backup:(sensitive)@127.0.0.1:9/host" in result.output


def test_run_and_restore_are_operations_of_the_contexts_one_runner(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`backup run` and `restore` hand typed operations to the AppContext's runner (no second
    runner of their own), and restic inherits no password source of ours: with
    RESTIC_PASSWORD_COMMAND in our environment, restic would refuse `--password-file`
    ("mutually exclusive") or take another password."""
    from reconciler.core.action import (
        BackupProfile,
        EnsureDirectory,
        MoveAside,
        RestoreInPlace,
        RestoreSnapshot,
    )

    monkeypatch.setenv("RESTIC_PASSWORD_COMMAND", "echo not-the-password")
    monkeypatch.setenv("RESTIC_PASSWORD", "not-the-password")
    executed: list[object] = []

    def invoke(*args: str) -> Result:
        return world.cli(*args, recording=executed)

    world.write_spec(retention={"keep_last": 5})
    assert invoke("backup", "init", str(world.spec)).exit_code == 0
    ran = invoke("backup", "run", str(world.spec))
    assert ran.exit_code == 0, ran.output
    staging = world.root / "staging"
    staged = invoke("backup", "restore", str(world.spec), "ops", "--into", str(staging))
    assert staged.exit_code == 0, staged.output
    in_place = invoke("backup", "restore", str(world.spec), "ops", "--in-place")
    assert in_place.exit_code == 0, in_place.output
    # The file effects in the user's home are the runner's own file operations, run as the user.
    assert [type(op) for op in executed] == [
        BackupProfile,
        RestoreSnapshot,
        EnsureDirectory,  # the staging directory, 0700
        RestoreInPlace,
        MoveAside,  # the state directory
        MoveAside,  # the workspace
        EnsureDirectory,  # the restored state directory, 0700
    ]
    backup, staged_op, _, in_place_op = executed[:4]
    assert isinstance(backup, BackupProfile) and backup.forget is not None
    assert backup.unit is None  # consistency: live
    assert isinstance(staged_op, RestoreSnapshot) and staged_op.directory == staging
    assert isinstance(in_place_op, RestoreInPlace)
    assert in_place_op.paths == (world.gateway_state, world.workspace)
    assert (staging / str(world.gateway_state).lstrip("/") / "clawdbot.json").exists()


def test_verify_and_the_metrics_are_operations_of_the_contexts_runner(world: World) -> None:
    """`backup verify` (the scratch restore and its comparison) and `backup run`'s metrics
    textfile are typed operations the AppContext's runner carries out, as the spec's user;
    the use case itself touches no file of the user's."""
    from reconciler.core.action import BackupProfile, VerifySnapshot, WriteTextfile

    executed: list[object] = []

    def invoke(*args: str) -> Result:
        return world.cli(*args, recording=executed)

    textfiles = world.root / "textfiles"
    textfiles.mkdir()
    world.spec.write_text(world.spec.read_text() + f"metrics:\n  textfile_dir: {textfiles}\n")
    assert invoke("backup", "init", str(world.spec)).exit_code == 0
    assert invoke("backup", "run", str(world.spec)).exit_code == 0
    verified = invoke("backup", "verify", str(world.spec))
    assert verified.exit_code == 0, verified.output
    assert "every file matches" in verified.output
    assert [type(op) for op in executed] == [BackupProfile, WriteTextfile, VerifySnapshot]
    _, textfile, verify = executed
    assert isinstance(textfile, WriteTextfile)
    assert (textfile.directory, textfile.name) == (textfiles, "reconciler-backup.prom")
    assert (textfiles / "reconciler-backup.prom").read_text() == textfile.content
    assert isinstance(verify, VerifySnapshot) and verify.profile == "ops"
    (snapshot,) = _snapshots(world)
    assert verify.snapshot == snapshot["id"]
