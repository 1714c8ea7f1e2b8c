"""Process trees: a command's whole tree ends at its deadline, however it tried to escape."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reconciler.core.command import Command
from reconciler.core.host import Account, HostContext
from reconciler.shell.runner import ReadOnlyRunner
from reconciler.system.process import MARKER, run_process, tree_members

# A child that forks a grandchild; the grandchild ignores SIGTERM, holds a lock, records its pid.
# ESCAPE: "" (stays in the group), "setsid" (new session, parent lives on),
# "orphan" (new session, parent exits: reparented away from the tree),
# "orphan-clean-env" (as orphan, and with an empty environment, as sudo would leave it; found
# only while its parent lives, so the parent waits).
FORKER = textwrap.dedent(
    """
    import fcntl, os, signal, sys, time
    lock, pidfile, escape = sys.argv[1], sys.argv[2], sys.argv[3]
    pid = os.fork()
    if pid == 0:
        if escape:
            os.setsid()
        if escape == "orphan-clean-env":
            os.execve(sys.executable, [sys.executable, "-c", sys.argv[4], lock, pidfile], {})
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        with open(pidfile, "w") as f:
            f.write(str(os.getpid()))
        while True:
            time.sleep(1)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if escape == "orphan":
        while not os.path.exists(pidfile):
            time.sleep(0.01)
        os._exit(0)
    while True:
        time.sleep(1)
    """
)
HOLDER = textwrap.dedent(
    """
    import fcntl, os, signal, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    with open(sys.argv[2], "w") as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(1)
    """
)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rpartition(")")[2].split()[0] not in "ZX"
    except FileNotFoundError:
        return False


def _lock_is_free(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.parametrize("escape", ["", "setsid", "orphan", "orphan-clean-env"])
def test_the_whole_tree_dies_at_the_deadline(tmp_path: Path, escape: str) -> None:
    lock, pidfile = tmp_path / "lock", tmp_path / "pid"
    argv = (sys.executable, "-S", "-c", FORKER, str(lock), str(pidfile), escape, HOLDER)
    if escape == "orphan-clean-env":
        argv = (*argv[:6], escape, HOLDER)
    # The deadline must come after the grandchild holds the lock: it has to be killed holding it.
    done = run_process(argv, env=dict(os.environ), stdin=None, timeout_s=1.5, grace_s=0.3)
    assert done.timed_out
    assert pidfile.exists(), "the grandchild never started: the test proves nothing"
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 2
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(grandchild), f"grandchild {grandchild} survived ({escape or 'in group'})"
    assert _lock_is_free(lock)


def test_an_orphan_left_in_the_group_after_a_normal_exit_is_ended(tmp_path: Path) -> None:
    lock, pidfile = tmp_path / "lock", tmp_path / "pid"
    # The child starts the holder in the background and exits 0 at once (a "daemonizing" tool).
    shell = (
        f"{sys.executable} -S -c '{HOLDER}' {lock} {pidfile} >/dev/null 2>&1 </dev/null & "
        f"while [ ! -s {pidfile} ]; do sleep 0.01; done; exit 0"
    )
    done = run_process(("/bin/sh", "-c", shell), env=dict(os.environ), stdin=None, timeout_s=10)
    assert (done.exit_code, done.timed_out) == (0, False)
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 3
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(grandchild)
    assert _lock_is_free(lock)


def test_output_before_the_deadline_is_kept_and_the_runner_reports_a_timeout() -> None:
    host = HostContext(
        hostname="h",
        invoker=Account.current(),
        user=Account.current(),
        user_name=Account.current().name,
    )
    runner = ReadOnlyRunner(host)
    runner.kill_grace_s = 0.2
    started = time.monotonic()
    result = runner.run(Command(("sh", "-c", "echo started; exec sleep 30"), timeout_s=0.5))
    assert result.timed_out and result.exit_code is None and not result.ok
    assert result.error == "timed out after 0.5 s"
    assert result.stdout == "started\n"
    assert time.monotonic() - started < 5


def test_every_command_runs_in_a_session_of_its_own_with_the_tree_marker() -> None:
    our_session = os.getsid(0)
    probe = (
        "import os; print(os.getsid(0) == os.getpid(), os.getpgid(0) == os.getpid(), "
        f"os.environ.get('{MARKER}', '')[:0] == '' and '{MARKER}' in os.environ)"
    )
    done = run_process(
        (sys.executable, "-S", "-c", probe), env=dict(os.environ), stdin=None, timeout_s=10
    )
    assert done.stdout.decode().split() == ["True", "True", "True"]
    # The child's setsid must not move us. Our own sid may read 0 when our session leader
    # lives outside this PID namespace (CI runs in a container), so compare, don't test.
    assert os.getsid(0) == our_session


def test_tree_members_never_include_ourselves() -> None:
    assert os.getpid() not in tree_members(os.getpid(), None)


# --- issue 22: npm left running after kill -9 of the reconciler ----------------------------------

ORPHAN = """
import os, sys, time
from pathlib import Path
from reconciler.system.process import run_process
pidfile = sys.argv[1]
# A long command (npm install), through a shell: the shell and its child both must go.
run_process(("/bin/sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"), env={"PATH": "/usr/bin:/bin"},
            stdin=None, timeout_s=600, guard=sys.argv[2] == "guard")
"""


@pytest.mark.parametrize("guard", [True, False])
def test_a_guarded_command_does_not_outlive_a_reconciler_killed_with_sigkill(
    tmp_path: Path, guard: bool
) -> None:
    import signal
    import subprocess
    import sys
    import time

    pidfile = tmp_path / "sleep.pid"
    reconciler = subprocess.Popen(
        [sys.executable, "-c", ORPHAN, str(pidfile), "guard" if guard else "plain"],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    deadline = time.monotonic() + 20
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    sleeper = int(pidfile.read_text())
    os.kill(reconciler.pid, signal.SIGKILL)
    reconciler.wait()
    deadline = time.monotonic() + 10
    while _alive(sleeper) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert _alive(sleeper) is (not guard)  # unguarded: the orphan the issue found
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(sleeper, signal.SIGKILL)


# Killed the moment the command has started, before run_process could say which pid it got.
KILLED_AT_START = """
import os, signal, subprocess, sys
from reconciler.system import process
real = subprocess.Popen
def popen_then_die(argv, *args, **kwargs):
    started = real(argv, *args, **kwargs)
    if argv[0] == "/bin/sh":  # the command (the watchdog, a python, starts through here too)
        os.kill(os.getpid(), signal.SIGKILL)
    return started
process.subprocess.Popen = popen_then_die
process.run_process(("/bin/sh", "-c", f"sleep {sys.argv[1]} & wait"),
                    env={"PATH": "/usr/bin:/bin"}, stdin=None, timeout_s=600, guard=True)
"""


def _running(argv: list[str]) -> list[int]:
    """The live pids whose command line is exactly `argv`."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                words = handle.read().split(b"\0")[:-1]
        except (OSError, ValueError):
            continue
        if [w.decode(errors="replace") for w in words] == argv and _alive(int(entry)):
            found.append(int(entry))
    return found


def test_a_reconciler_killed_before_it_learns_the_pid_still_leaves_no_tree(tmp_path: Path) -> None:
    """The command is announced by its marker before it starts: nothing depends on the write of
    its pid (CI once found the tree alive when the kill came between the start and that write).
    The tree may be ended before its shell started `sleep`: what counts is that none is left."""
    import secrets
    import signal
    import subprocess
    import sys
    import time

    seconds = str(3000 + secrets.randbelow(5000))  # names this test's sleep among all processes
    reconciler = subprocess.run(
        [sys.executable, "-c", KILLED_AT_START, seconds],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        check=False,
    )
    assert reconciler.returncode == -signal.SIGKILL
    sleep, shell = ["sleep", seconds], ["/bin/sh", "-c", f"sleep {seconds} & wait"]
    time.sleep(3)  # the watchdog's start, its grace and its second look
    deadline = time.monotonic() + 20
    while (_running(sleep) or _running(shell)) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _running(sleep) + _running(shell)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert left == []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False
