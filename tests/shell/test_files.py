"""Leftovers (issue 11 #10): a write killed half way leaves a temp file the next run removes."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.core.action import EnsureSecretEnv, WriteFile
from reconciler.core.host import Account, HostContext
from reconciler.shell.files import ensure_directory, is_stale_temp, temp_target
from reconciler.shell.runner import HostRunner

TOKEN = "CLAWDBOT_GATEWAY_TOKEN=" + "ab" * 32
TEMP = re.compile(r"^\.gateway\.env\.(\d+)-[0-9a-f]{8}\.reconciler-tmp$")

# Writes `argv[1]` with a token and stalls in fsync (after every byte is in the temp file),
# telling the test through `argv[2]` that it is time to kill it.
WRITER = """
import os, sys, time
from pathlib import Path
from reconciler.shell import files

fsync = os.fsync

def stall(fd):
    if not os.readlink(f"/proc/self/fd/{fd}").endswith(".reconciler-tmp") or "backup" in os.readlink(f"/proc/self/fd/{fd}"):
        return fsync(fd)
    Path(sys.argv[2]).write_text("ready")
    time.sleep(120)

os.fsync = stall
files.atomic_write(Path(sys.argv[1]), sys.argv[3] + "\\n", 0o600, backup=True)
"""


def start_writer(target: Path, ready: Path) -> subprocess.Popen[bytes]:
    ready.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target), str(ready), TOKEN])
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert proc.poll() is None, "the writer died before it was ready"
        assert time.monotonic() < deadline, "the writer never got to fsync"
        time.sleep(0.02)
    return proc


def kill9(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def temps(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if TEMP.match(n))


def test_temp_names_are_recognisable() -> None:
    assert temp_target(".gateway.env.123-0a1b2c3d.reconciler-tmp") == "gateway.env"
    assert temp_target(".clawdbot.json.reconciler-backup.9-00000000.reconciler-tmp") == (
        "clawdbot.json.reconciler-backup"
    )
    assert temp_target(".clawdbot.json.k2_9abcd.tmp") == "clawdbot.json"  # before: mkstemp's
    assert temp_target("gateway.env") is None
    assert temp_target(".gateway.env.reconciler-backup") is None
    assert not is_stale_temp(f".x.{os.getppid()}-0a1b2c3d.reconciler-tmp")  # a live writer


def test_a_killed_write_leaves_a_0600_temp_that_the_next_write_removes(tmp_path: Path) -> None:
    target = tmp_path / "gateway.env"
    target.write_text("OLD=1\n")
    seen: list[str] = []
    for _ in range(3):  # three runs killed in a row: each sweeps the one before
        kill9(start_writer(target, tmp_path / "ready"))
        left = temps(tmp_path)
        assert len(left) == 1 and left[0] not in seen
        seen.append(left[0])
    for name in left:
        info = (tmp_path / name).stat()
        assert stat.S_IMODE(info.st_mode) == 0o600  # the token never sat in a readable file
        assert (tmp_path / name).read_text() == TOKEN + "\n"
    assert target.read_text() == "OLD=1\n"  # nothing half-written replaced the file
    # a legacy mkstemp temp of the same target goes too; someone else's look-alike stays
    (tmp_path / ".gateway.env.k2_9abcd.tmp").write_text(TOKEN)
    (tmp_path / ".notes.txt.k2_9abcd.tmp").write_text("keep")
    runner = HostRunner(HostContext("h", Account.current(), Account.current(), "root"))
    assert runner.execute(EnsureSecretEnv(target, "CLAWDBOT_GATEWAY_TOKEN")).ok
    assert temps(tmp_path) == []
    assert sorted(os.listdir(tmp_path)) == [
        ".notes.txt.k2_9abcd.tmp",
        "gateway.env",
        "gateway.env.reconciler-backup",  # made by the first killed run, before its temp
        "ready",
    ]


def test_a_live_writers_temp_is_left_alone_until_it_dies(tmp_path: Path) -> None:
    target = tmp_path / "gateway.env"
    live = start_writer(target, tmp_path / "ready")
    try:
        other = tmp_path / "clawdbot.json"
        runner = HostRunner(HostContext("h", Account.current(), Account.current(), "root"))
        assert runner.execute(WriteFile(other, "{}", 0o600)).ok
        assert len(temps(tmp_path)) == 1  # still being written: not ours to remove
    finally:
        kill9(live)
    assert runner.execute(WriteFile(other, "{ }", 0o600)).ok
    assert temps(tmp_path) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="drops to another uid: needs root")
def test_as_root_the_sweep_runs_as_the_user_too(tmp_path: Path) -> None:
    user = Account("rp-test-user", 1000, 1000, tmp_path)
    tmp_path.chmod(0o711)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, user.uid, user.gid)
    kill9(start_writer(state / "gateway.env", tmp_path / "ready"))  # root's own temp
    assert len(temps(state)) == 1
    root = Account("root", 0, 0, Path("/root"))
    runner = HostRunner(HostContext("h", root, user, user.name))
    result = runner.execute(EnsureSecretEnv(state / "gateway.env", "CLAWDBOT_GATEWAY_TOKEN"))
    assert result.ok and result.detail == "generated"
    assert temps(state) == []
    assert (state / "gateway.env").stat().st_uid == user.uid


def test_an_existing_directory_of_another_owner_is_refused_not_taken(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    me = Account.current()
    someone = Account("someone", me.uid + 4242, me.gid, tmp_path)
    with pytest.raises(PermissionError, match="refusing to take it over"):
        ensure_directory(theirs, 0o700, someone)
    assert stat.S_IMODE(theirs.stat().st_mode) == 0o755


def test_another_thread_of_ours_keeps_its_temp_while_it_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Specs applied side by side write into the same folder from threads of one process: a
    temp file with our own pid is stale only when no thread of ours is still writing it."""
    import threading

    from reconciler.shell import files

    stalled = threading.Event()
    go_on = threading.Event()
    real_fsync = os.fsync

    def stall(fd: int) -> None:
        if threading.current_thread().name == "slow" and not stalled.is_set():
            stalled.set()
            assert go_on.wait(30)
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", stall)
    failures: list[BaseException] = []

    def slow_write() -> None:
        try:
            files.atomic_write(tmp_path / "a.env", "A=1\n", 0o600, backup=False)
        except BaseException as problem:  # reported by the assertion below
            failures.append(problem)

    slow = threading.Thread(target=slow_write, name="slow")
    slow.start()
    assert stalled.wait(30)
    mine = [n for n in os.listdir(tmp_path) if n.startswith(".a.env.")]
    assert len(mine) == 1 and is_stale_temp(mine[0]) is False
    files.atomic_write(tmp_path / "b.env", "B=1\n", 0o600, backup=False)  # sweeps the folder
    assert mine[0] in os.listdir(tmp_path)
    go_on.set()
    slow.join(30)
    assert failures == []
    assert (tmp_path / "a.env").read_text() == "A=1\n"
    assert sorted(os.listdir(tmp_path)) == ["a.env", "b.env"]
    # once written, a temp of ours with a name no thread holds is an interrupted write again
    assert is_stale_temp(f".a.env.{os.getpid()}-0a1b2c3d.reconciler-tmp")
