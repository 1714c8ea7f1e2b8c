"""The edits of the reconciler's memory that `rollback` and `update --retry` plan
(`MarkBadVersion`, `ForgetBadVersion`, `ForgetFailedInstall`) are the runner's, done as the
spec's user: with a real second account, a file root writes there is the user's, and a memory
folder the user points at a folder of root's is refused by the kernel, not written by root."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from real_users import real_user  # noqa: F401  (the fixture)

from reconciler.core.action import ForgetBadVersion, ForgetFailedInstall, MarkBadVersion
from reconciler.core.host import Account, HostContext
from reconciler.facts.switches import BAD_VERSIONS, FAILED_INSTALLS, memory_dir
from reconciler.shell.memory import FORGOTTEN
from reconciler.shell.runner import HostRunner


def root_runner(user: Account) -> HostRunner:
    host = HostContext(
        hostname=socket.gethostname(), invoker=Account.current(), user=user, user_name=user.name
    )
    return HostRunner(host, sleep=lambda s: None)


def mark(memory: Path) -> MarkBadVersion:
    return MarkBadVersion(memory, "ops", "2026.2.1", "2026-12-07T10:00:00+00:00", "by hand")


def test_a_mark_is_written_as_the_user_and_forgotten_as_the_user(
    real_user: Account,  # noqa: F811
) -> None:
    runner = root_runner(real_user)
    memory = memory_dir(real_user.home)
    done = runner.execute(mark(memory))
    assert done.ok, done.detail
    written = memory / BAD_VERSIONS
    assert (os.stat(written).st_uid, os.stat(memory).st_uid) == (real_user.uid, real_user.uid)
    profiles = json.loads(written.read_text())["profiles"]
    assert profiles["ops"]["version"] == "2026.2.1" and profiles["ops"]["reason"] == "by hand"
    forgot = runner.execute(ForgetBadVersion(memory, "ops"))
    assert (forgot.ok, forgot.detail) == (True, FORGOTTEN)
    assert json.loads(written.read_text()) == {"profiles": {}}
    assert os.stat(written).st_uid == real_user.uid
    again = runner.execute(ForgetBadVersion(memory, "ops"))
    assert (again.ok, again.detail) == (True, "")
    nothing = runner.execute(ForgetFailedInstall(memory, "2026.2.1"))
    assert (nothing.ok, nothing.detail) == (True, "")
    assert not (memory / FAILED_INSTALLS).exists()


def test_a_memory_the_user_points_at_roots_folder_is_refused(
    real_user: Account,  # noqa: F811
    tmp_path: Path,
) -> None:
    roots = tmp_path / "roots"
    roots.mkdir(mode=0o755)  # root's, readable by all, writable by root only
    memory = memory_dir(real_user.home)
    planted = memory.parent  # ~/.local/state: a link the user may plant in their home
    planted.parent.mkdir(parents=True)
    for folder in (planted.parent, planted.parent.parent):
        os.chown(folder, real_user.uid, real_user.gid)
    planted.symlink_to(roots)
    os.lchown(planted, real_user.uid, real_user.gid)
    done = root_runner(real_user).execute(mark(memory))
    assert not done.ok
    assert "Permission denied" in done.detail, done.detail
    assert list(roots.iterdir()) == []
