"""The apply lock: contention between real processes, SIGKILL, waiting, the state directory."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reconciler.app.unattended import EXIT_LOCKED
from reconciler.core.host import Account
from reconciler.unattended.lock import LockBusy, apply_lock, read_holder
from reconciler.unattended.runs import read_records

from .helpers import write_spec

# A process that runs the real unattended apply and holds the lock inside do_apply until the
# test creates `release` (or 20 s pass, so a failed test never leaves it behind for long).
HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from reconciler.app.unattended import unattended_apply
    from reconciler.unattended.runs import ApplyOutcome

    state, spec, ready, release, timeout = sys.argv[1:6]

    def do_apply(spec, log):
        Path(ready).touch()
        deadline = time.monotonic() + 20
        while not Path(release).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return ApplyOutcome("converged")

    sys.exit(unattended_apply(Path(spec), lock_timeout=float(timeout), non_interactive=True,
                              log_format="text", do_apply=do_apply, state=Path(state)))
    """
)


def _start(
    tmp_path: Path, name: str, timeout: float = 0
) -> tuple[subprocess.Popen[str], Path, Path]:
    spec = write_spec(tmp_path)
    ready, release = tmp_path / f"{name}.ready", tmp_path / f"{name}.release"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            HOLDER,
            str(tmp_path / "state"),
            str(spec),
            str(ready),
            str(release),
            str(timeout),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, ready, release


def _wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the holder never took the lock"
        time.sleep(0.02)


def test_second_apply_exits_75_naming_the_holder(tmp_path: Path) -> None:
    first, ready, release = _start(tmp_path, "first")
    try:
        _wait_for(ready, first)
        second, _, _ = _start(tmp_path, "second")
        _out, err = second.communicate(timeout=30)
        assert second.returncode == EXIT_LOCKED == 75
        assert f"pid={first.pid}" in err
        assert "command=" in err and "started=" in err
    finally:
        release.touch()
        first.communicate(timeout=30)
    assert first.returncode == 0
    results = [(r.result, r.pid) for r in read_records(tmp_path / "state")]
    assert results == [("locked", second.pid), ("converged", first.pid)]
    assert "pid " + str(first.pid) in read_records(tmp_path / "state")[0].reason


def test_a_waiting_apply_gets_the_lock_when_the_holder_finishes(tmp_path: Path) -> None:
    first, ready, release = _start(tmp_path, "first")
    try:
        _wait_for(ready, first)
        second, second_ready, second_release = _start(tmp_path, "second", timeout=30)
        assert second.stderr is not None
        waiting = second.stderr.readline()  # printed once the second apply finds the lock held
        assert f"waiting up to 30 s for the apply lock held by pid {first.pid}" in waiting
        assert not second_ready.exists()
        release.touch()
        _wait_for(second_ready, second)
        second_release.touch()
        second.communicate(timeout=30)
        assert second.returncode == 0
    finally:
        release.touch()
        first.communicate(timeout=30)


def test_a_holder_killed_with_sigkill_leaves_no_stale_lock(tmp_path: Path) -> None:
    first, ready, _ = _start(tmp_path, "first")
    _wait_for(ready, first)
    state = tmp_path / "state"
    holder = read_holder(state)
    assert holder is not None and holder.pid == first.pid
    os.kill(first.pid, signal.SIGKILL)
    first.communicate(timeout=30)
    with apply_lock(state, 0) as me:  # at once: the kernel dropped the dead holder's flock
        assert me.pid == os.getpid()
        assert json.loads((state / "lock").read_text())["pid"] == os.getpid()


def test_timeout_raises_with_the_holders_details(tmp_path: Path) -> None:
    clock = iter([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    waited_for: list[object] = []
    second = apply_lock(
        tmp_path, 2, on_wait=waited_for.append, clock=lambda: next(clock), sleep=lambda _: None
    )
    with (
        apply_lock(tmp_path, 0, command="reconciler apply a.yaml") as me,
        pytest.raises(LockBusy) as busy,
        second,
    ):
        pass
    assert busy.value.holder == me
    assert busy.value.holder is not None and busy.value.holder.command == "reconciler apply a.yaml"
    assert waited_for == [me]  # told once, with whom we wait for
    assert "pid" in str(busy.value)


def test_lock_is_released_and_cleared_after_the_block(tmp_path: Path) -> None:
    with apply_lock(tmp_path, 0):
        pass
    assert read_holder(tmp_path) is None
    with apply_lock(tmp_path, 0):
        pass


def test_state_directory_is_private(tmp_path: Path) -> None:
    state = tmp_path / "xdg" / "reconciler"
    old = os.umask(0o022)
    try:
        with apply_lock(state, 0):
            pass
    finally:
        os.umask(old)
    assert state.stat().st_mode & 0o777 == 0o700
    assert (state / "lock").stat().st_mode & 0o777 == 0o600


def test_state_dir_follows_xdg_state_home(tmp_path: Path) -> None:
    from reconciler.unattended import state_dir

    assert state_dir({"XDG_STATE_HOME": str(tmp_path), "HOME": "/h"}) == tmp_path / "reconciler"
    assert state_dir({"HOME": "/h"}) == Path("/h/.local/state/reconciler")
    assert state_dir({"XDG_STATE_HOME": "relative", "HOME": "/h"}) == Path(
        "/h/.local/state/reconciler"
    )


# --- one lock per host (issue 11 #7) and lock files that are not regular files -------------------


def _apply_without_state(spec: Path, xdg: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """What the CLI does: no state directory named, so the host's lock is taken."""
    from reconciler.app.unattended import unattended_apply
    from reconciler.unattended.runs import ApplyOutcome

    monkeypatch.setenv("XDG_STATE_HOME", str(xdg))
    return unattended_apply(
        spec,
        lock_timeout=0,
        non_interactive=True,
        log_format="text",
        do_apply=lambda spec, log: ApplyOutcome("converged"),  # type: ignore[arg-type,return-value]
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="root's lock: needs root")
def test_root_invocations_with_different_state_dirs_share_roots_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from reconciler.unattended.lock import hold_lock, host_lock_path

    spec = write_spec(tmp_path)
    # root holds the lock under one XDG_STATE_HOME; another root run has another one.
    with hold_lock(host_lock_path(tmp_path / "root-state"), 0, command="reconciler apply (root)"):
        assert _apply_without_state(spec, tmp_path / "other-xdg", monkeypatch) == EXIT_LOCKED
    assert "reconciler apply (root)" in capsys.readouterr().err
    assert _apply_without_state(spec, tmp_path / "other-xdg", monkeypatch) == 0
    (locked, converged) = read_records(tmp_path / "other-xdg" / "reconciler")
    assert (locked.result, converged.result) == ("locked", "converged")
    assert not (tmp_path / "other-xdg" / "reconciler" / "lock").exists()


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink"])
def test_a_lock_path_that_is_not_a_regular_file_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    from reconciler.unattended.lock import host_lock_path

    lock = host_lock_path(tmp_path / "xdg" / "reconciler")
    lock.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(lock)
    elif kind == "directory":
        lock.mkdir()
    else:
        lock.symlink_to(tmp_path / "elsewhere")
    started = time.monotonic()
    assert _apply_without_state(write_spec(tmp_path), tmp_path / "xdg", monkeypatch) == 1
    assert time.monotonic() - started < 5  # a FIFO must not hang us
    err = capsys.readouterr().err
    expected = {
        "fifo": "is a FIFO (named pipe), not a regular file",
        "directory": "is a directory, not a regular file",
        "symlink": "is a symbolic link",
    }[kind]
    assert f"error: the lock file {lock} {expected}" in err and f"{lock}) and run again" in err
    (record,) = read_records(tmp_path / "xdg" / "reconciler")
    assert record.result == "failed" and expected in (record.reason or "")
    assert read_holder(lock.parent) is None  # reading a FIFO as the holder does not hang either


def test_the_user_locks_in_their_own_state_dir_root_in_its_own_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reconciler.unattended.lock as lock

    state = tmp_path / "state"
    if os.geteuid() != 0:
        assert lock.host_lock_path(state) == state / "lock"
        return
    assert lock.host_lock_path(state) == lock.ROOT_LOCK_DIR / "lock"
    # no /run to make it in (a container): root's own state directory
    monkeypatch.setattr(lock, "ROOT_LOCK_DIR", tmp_path / "missing" / "reconciler")
    assert lock.host_lock_path(state) == state / "lock"
    # a directory root did not make for itself alone is refused, never used
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    loose.chmod(0o777)
    monkeypatch.setattr(lock, "ROOT_LOCK_DIR", loose)
    with pytest.raises(lock.LockUnusable, match=r"must be root's directory writable by root alone"):
        lock.host_lock_path(state)


# --- issue 22: a lock no other local user can take first -----------------------------------------

# Another local user's attack, as it worked on /run/lock/reconciler.lock: create the lock file
# first (readable and writable for all), flock it, and sit on it.
SQUAT = textwrap.dedent(
    """
    import fcntl, os, sys, time
    path = sys.argv[1]
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("holding", flush=True)
    except OSError as exc:
        print(f"refused: {exc.strerror}", flush=True)
        sys.exit(0)
    time.sleep(30)
    """
)


def _as(user: str, path: Path) -> subprocess.Popen[str]:
    """`user` (a process with their uid, gid and groups) creating and holding `path`; the
    system's python, which every user may run."""
    python = shutil.which("python3", path="/usr/bin:/bin")
    account = Account.lookup(user)
    if python is None or account is None:
        pytest.skip("no system python3 or no such user")
    return subprocess.Popen(
        [python, "-c", SQUAT, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        cwd="/",
        user=account.uid,
        group=account.gid,
        extra_groups=os.getgrouplist(account.name, account.gid),
    )


def _squat(user: str, path: Path) -> str:
    """What `user` gets trying to create and hold `path`."""
    proc = _as(user, path)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    proc.kill()
    proc.wait()
    return line


def _root_apply_for(spec_user: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    text = f"apiVersion: reconciler/v1\nhost:\n  name: vm102\n  user: {spec_user}\n"
    spec = write_spec(tmp_path / "spec", text + "profiles:\n  personal:\n    port: 18789\n")
    return _apply_without_state(spec, tmp_path / "root-xdg", monkeypatch)


def test_another_local_user_cannot_take_the_lock_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_user: Account
) -> None:
    import reconciler.unattended.lock as lock

    other = Account.lookup("nobody")
    assert other is not None
    # The directories the locks live in are root's and the spec user's alone.
    root_lock = lock.host_lock_path(tmp_path / "unused")
    assert _squat(other.name, root_lock) == "refused: Permission denied"
    user_lock = lock.user_lock_path(local_user)
    assert _root_apply_for(local_user.name, tmp_path, monkeypatch) == 0  # makes the user's dir
    assert _squat(other.name, user_lock) == "refused: Permission denied"
    info = os.stat(user_lock)
    assert (info.st_uid, info.st_mode & 0o777) == (local_user.uid, 0o600)
    assert os.stat(user_lock.parent).st_mode & 0o777 == 0o700
    assert _root_apply_for(local_user.name, tmp_path, monkeypatch) == 0


def test_root_waits_for_the_users_timer_and_the_user_for_root(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    local_user: Account,
) -> None:
    import reconciler.unattended.lock as lock

    assert _root_apply_for(local_user.name, tmp_path, monkeypatch) == 0
    # The user (their timer) holds their own lock, as themselves.
    proc = _as(local_user.name, lock.user_lock_path(local_user))
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
        assert _root_apply_for(local_user.name, tmp_path, monkeypatch) == EXIT_LOCKED
        assert f"holds {lock.user_lock_path(local_user)}" in capsys.readouterr().err
    finally:
        proc.kill()
        proc.wait()
    assert _root_apply_for(local_user.name, tmp_path, monkeypatch) == 0


def test_a_symlink_the_user_plants_on_the_way_to_their_lock_is_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    local_user: Account,
) -> None:
    import reconciler.unattended.lock as lock

    victim = tmp_path / "root-only"
    victim.mkdir(mode=0o755)
    state = local_user.home / ".local" / "state"
    state.mkdir(parents=True)
    for part in (local_user.home / ".local", state):
        os.chown(part, local_user.uid, local_user.gid)
    (state / "reconciler").symlink_to(victim)
    os.lchown(state / "reconciler", local_user.uid, local_user.gid)
    assert _root_apply_for(local_user.name, tmp_path, monkeypatch) == 1
    assert "error: cannot " in capsys.readouterr().err
    assert list(victim.iterdir()) == []  # nothing made in root's directory
    assert (victim.stat().st_uid, victim.stat().st_mode & 0o777) == (0, 0o755)
    assert lock.user_lock_path(local_user).parent.is_symlink()
