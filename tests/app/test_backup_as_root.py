"""Root's `reconciler backup ...` for a real second account, with the real restic, repeating the
red team's attacks on it (issue 22): the user's environment file running code as root, and
restores that chowned root's files through symlinks the user planted."""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from real_users import Attack, as_user, real_user  # noqa: F401  (the fixture)

from reconciler.app.backup import read_records
from reconciler.app.context import AppContext
from reconciler.app.unattended import unattended_apply
from reconciler.cli import cli
from reconciler.core.host import Account
from reconciler.spec import load_spec
from reconciler.spec.model import Spec
from reconciler.unattended.place import StatePlace
from reconciler.unattended.runs import ApplyOutcome

if shutil.which("restic") is None:
    pytest.skip("restic is not installed (apt-get install restic)", allow_module_level=True)

HOST = socket.gethostname()
PASSWORD = "pw-0123456789abcdef"


@dataclass
class Setup:
    """A real user with one backed-up profile in their home, a repository and its password."""

    tmp: Path
    user: Account
    spec: Path

    @property
    def home(self) -> Path:
        return self.user.home

    @property
    def state(self) -> Path:
        return self.home / ".clawdbot-ops"

    @property
    def workspace(self) -> Path:
        return self.home / "clawd-ops"

    def load(self, path: Path) -> Spec:
        spec = load_spec(path)
        (ops,) = spec.profiles
        moved = replace(ops, state_dir=str(self.state), workspace=str(self.workspace))
        return replace(spec, profiles=(moved,))

    def cli(self, *args: str) -> Result:
        app = AppContext(state_dir=lambda: self.tmp / "root-state", spec_loader=self.load)
        return CliRunner().invoke(cli, list(args), obj=app, catch_exceptions=False)

    def write_spec(self, **backup: object) -> None:
        fields = {
            "repository": str(self.home / "repo"),
            "password_file": str(self.home / "restic-password"),
            "consistency": "live",
            **backup,
        }
        body = "".join(f"  {k}: {json.dumps(v)}\n" for k, v in fields.items())
        self.spec.write_text(
            "apiVersion: reconciler/v1\n"
            f"host: {{name: {HOST}, user: {self.user.name}}}\n"
            "profiles:\n"
            "  ops: {port: 18789}\n"
            f"backup:\n{body}"
        )

    def restic(self, *args: str) -> str:
        """restic as the user (what the user's backup timer does)."""
        return as_user(
            self.user,
            "restic",
            "--repo",
            str(self.home / "repo"),
            "--password-file",
            str(self.home / "restic-password"),
            *args,
        )


@pytest.fixture
def setup(tmp_path: Path, real_user: Account) -> Iterator[Setup]:  # noqa: F811
    s = Setup(tmp_path, real_user, tmp_path / "spec.yaml")
    s.write_spec()
    as_user(real_user, "sh", "-c", f"umask 077; echo {PASSWORD} > restic-password")
    as_user(real_user, "mkdir", "-p", str(s.state / "credentials"), str(s.workspace))
    as_user(real_user, "sh", "-c", f"echo '{{}}' > {s.state}/clawdbot.json")
    s.restic("init")
    yield s


def test_root_backup_list_runs_no_code_of_the_users_environment_file(
    setup: Setup, tmp_path: Path
) -> None:
    attack = Attack(tmp_path, setup.user)
    setup.write_spec(environment_file=str(attack.env_file))
    result = setup.cli("backup", "list", str(setup.spec))
    assert result.exit_code == 0, result.output
    assert attack.root_loaded_it() == []
    assert attack.planted_ran() == ""
    # restic itself (the user's process) did get the file: the object was loaded as the user.
    assert f"euid={setup.user.uid}" in attack.loaded.read_text()


def test_root_backup_list_refuses_an_environment_file_that_is_a_symlink(
    setup: Setup, tmp_path: Path
) -> None:
    link = setup.home / "env"
    link.symlink_to("/etc/shadow")
    os.lchown(link, setup.user.uid, setup.user.gid)
    setup.write_spec(environment_file=str(link))
    result = setup.cli("backup", "list", str(setup.spec))
    assert result.exit_code == 1
    assert "environment_file" in result.output
    assert "root:" not in result.output  # not a byte of the target


def _root_dir_with_a_secret(tmp_path: Path) -> tuple[Path, Path]:
    victim = tmp_path / "root-only"
    victim.mkdir(mode=0o700)
    secret = victim / "root-secret"
    secret.write_text("root's\n")
    secret.chmod(0o600)
    return victim, secret


def _still_roots(*paths: Path) -> None:
    for path in paths:
        st = os.lstat(path)
        assert (st.st_uid, st.st_gid) == (0, 0), f"{path} was given away"


def _backup_as_the_timer(setup: Setup) -> None:
    """What the user's backup timer does: restic as the user, with our tags."""
    setup.restic(
        "backup",
        "--host",
        HOST,
        "--tag",
        "profile:ops",
        "--tag",
        f"host:{HOST}",
        str(setup.state),
        str(setup.workspace),
    )


def test_root_restore_in_place_does_not_chown_through_a_symlinked_state_dir(
    setup: Setup, tmp_path: Path
) -> None:
    """The red team: the state directory made a symlink to a root-owned directory, backed up by
    the timer, the real directory put back; root's `restore --in-place` then made the root
    directory and every file in it the user's."""
    victim, secret = _root_dir_with_a_secret(tmp_path)
    as_user(setup.user, "mv", str(setup.state), str(setup.home / "real-state"))
    as_user(setup.user, "ln", "-s", str(victim), str(setup.state))
    _backup_as_the_timer(setup)
    as_user(setup.user, "rm", str(setup.state))
    as_user(setup.user, "mv", str(setup.home / "real-state"), str(setup.state))

    result = setup.cli("backup", "restore", str(setup.spec), "ops", "--in-place")
    _still_roots(victim, secret)
    assert os.stat(victim).st_mode & 0o777 == 0o700
    assert result.exit_code == 1, result.output
    assert "symlink" in result.output
    # The live state was moved aside as the user, not lost.
    kept = list(setup.home.glob(".clawdbot-ops.before-restore-*"))
    assert len(kept) == 1 and (kept[0] / "clawdbot.json").exists()


def test_root_restore_in_place_of_a_normal_snapshot_works(setup: Setup) -> None:
    _backup_as_the_timer(setup)
    as_user(setup.user, "sh", "-c", f"echo changed > {setup.state}/clawdbot.json")
    result = setup.cli("backup", "restore", str(setup.spec), "ops", "--in-place")
    assert result.exit_code == 0, result.output
    assert (setup.state / "clawdbot.json").read_text() == "{}\n"
    for path in (setup.state, *setup.state.rglob("*")):
        assert os.lstat(path).st_uid == setup.user.uid, path
    assert os.stat(setup.state).st_mode & 0o777 == 0o700


def test_root_restore_target_does_not_chown_a_symlinked_root_directory(
    setup: Setup, tmp_path: Path
) -> None:
    """`--target ~/inspect` pointing at an empty root directory."""
    _backup_as_the_timer(setup)
    victim = tmp_path / "root-empty"
    victim.mkdir(mode=0o700)
    inspect = setup.home / "inspect"
    as_user(setup.user, "ln", "-s", str(victim), str(inspect))
    result = setup.cli("backup", "restore", str(setup.spec), "ops", "--into", str(inspect))
    assert result.exit_code == 1, result.output
    _still_roots(victim)
    assert list(victim.iterdir()) == []


def test_root_restore_into_the_default_staging_directory_works_as_the_user(
    setup: Setup,
) -> None:
    """Root's default staging directory is the user's (restic runs as the user and could not
    enter root's state directory), created as the user."""
    _backup_as_the_timer(setup)
    result = setup.cli("backup", "restore", str(setup.spec), "ops")
    assert result.exit_code == 0, result.output
    restores = setup.home / ".local/state/reconciler/restores"
    (staging,) = restores.iterdir()
    restored = staging / str(setup.state).lstrip("/") / "clawdbot.json"
    assert restored.read_text() == "{}\n"
    for path in (staging, restored):
        assert os.lstat(path).st_uid == setup.user.uid
    assert not (setup.tmp / "root-state" / "restores").exists()


# --- one host whoever runs it --------------------------------------------------------------


def _user_place(setup: Setup) -> StatePlace:
    """The user's own state directory, read as the user (what their timer and `status` see)."""
    return StatePlace(setup.home / ".local/state/reconciler", setup.user)


def _root_apply(setup: Setup, result: str = "converged") -> int:
    app = AppContext(state_dir=lambda: setup.tmp / "root-state", spec_loader=setup.load)
    return unattended_apply(
        setup.spec,
        lock_timeout=5,
        non_interactive=True,
        log_format="text",
        do_apply=lambda spec, log: ApplyOutcome(result),  # type: ignore[arg-type]
        ctx=app,
    )


def test_roots_apply_is_recorded_where_the_users_status_reads_it(setup: Setup) -> None:
    """After `sudo reconciler apply` the user's `status` said "Last run: never": root's
    record went to root's ~/.local/state."""
    assert _root_apply(setup) == 0
    (record,) = _user_place(setup).runs()
    assert record.result == "converged" and record.user == "root"
    runs = setup.home / ".local/state/reconciler/runs.jsonl"
    assert (os.stat(runs).st_uid, os.stat(runs).st_mode & 0o777) == (setup.user.uid, 0o600)
    assert os.stat(runs.parent).st_uid == setup.user.uid
    assert os.stat(runs.parent).st_mode & 0o777 == 0o700
    assert not (setup.tmp / "root-state" / "runs.jsonl").exists()
    status = setup.cli("status", str(setup.spec))
    assert status.exit_code == 0, status.output
    assert "never" not in status.output.split("\n")[0] and "converged" in status.output


def test_roots_suspend_with_the_spec_pauses_the_users_timer(setup: Setup) -> None:
    result = setup.cli("suspend", str(setup.spec), "--reason", "migrating")
    assert result.exit_code == 0, result.output
    found = _user_place(setup).suspension()
    assert found is not None and found.reason == "migrating" and found.by == "root"
    suspended = setup.home / ".local/state/reconciler/suspended.json"
    assert os.stat(suspended).st_uid == setup.user.uid
    assert _root_apply(setup) == 0  # a timer run finds the suspension: nothing done
    assert _user_place(setup).runs()[-1].result == "suspended"
    assert setup.cli("resume", str(setup.spec)).exit_code == 0
    assert _user_place(setup).suspension() is None


def test_roots_records_never_follow_the_users_symlinked_state_dir(
    setup: Setup, tmp_path: Path
) -> None:
    victim, secret = _root_dir_with_a_secret(tmp_path)
    (setup.home / ".local/state").mkdir(parents=True)
    os.chown(setup.home / ".local", setup.user.uid, setup.user.gid)
    os.chown(setup.home / ".local/state", setup.user.uid, setup.user.gid)
    as_user(setup.user, "ln", "-s", str(victim), str(setup.home / ".local/state/reconciler"))
    _root_apply(setup)
    assert sorted(p.name for p in victim.iterdir()) == ["root-secret"]
    _still_roots(victim, secret)


def test_roots_backup_records_land_in_the_users_place(setup: Setup) -> None:
    _backup_as_the_timer(setup)
    result = setup.cli("backup", "verify", str(setup.spec))
    assert result.exit_code == 0, result.output
    (record,) = read_records(_user_place(setup))
    assert record.kind == "verify" and record.ok
    backups = setup.home / ".local/state/reconciler/backups.jsonl"
    assert os.stat(backups).st_uid == setup.user.uid
    assert not (setup.tmp / "root-state" / "backups.jsonl").exists()
    status = setup.cli("status", str(setup.spec))
    assert "last verified restore 20" in status.output, status.output
