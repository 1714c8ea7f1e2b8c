"""The apply lock: contention between real processes, SIGKILL, waiting, the state directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reconciler.app.unattended import EXIT_LOCKED
from reconciler.shell.lock import LockBusy, apply_lock, read_holder
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
