"""Running one child process to completion, or killing its whole tree at the deadline.

Every command starts in a session (and so a process group) of its own, with a marker in its
environment. At the deadline the tree is ended as a whole, not only the direct child: `runuser`,
`sudo` and shells leave grandchildren that would otherwise survive as orphans (one held a lock
and blocked the next apply for eleven minutes). The tree is everything that is, at that moment,

- in the child's process group or session (a shell's background jobs, `sudo`'s helpers),
- a descendant of the child by parent pid (also one that left with `setsid`, while its parent
  lives), or
- carrying the marker in its environment (also one that left with `setsid` and whose parent
  died; `sudo` resets the environment, which is why the parent walk exists too).

Each gets SIGTERM, then, after a grace period, SIGKILL; the scan repeats until nothing is left,
so a process forked during the grace period is found as well. When the child exits by itself,
whatever it left in its own process group is ended the same way: the runner starts no daemons
(systemd does), so a survivor is an orphan by definition.

Killed ourselves (kill -9 of the reconciler, an OOM kill), we cannot end anything: npm went on
installing for minutes after its reconciler was gone (issue 22). So a mutating command
(`guard=True`) is also announced to a watchdog, a small process we start once (`_Watchdog`) that
holds the read end of a pipe whose write end only we hold: when we die, however, the kernel
closes it, the watchdog reads EOF, ends the tree of every command still announced, and exits.
A command is announced before it starts, by the marker its processes carry in their
environment, and again with its pid once it runs: no moment is left in which a kill of the
reconciler would leave a started tree unannounced.
PR_SET_PDEATHSIG alone would not do: it reaches the direct child only (`runuser`, `sudo`, `sh`),
never the npm below it, and is cleared when the child changes its uid.

Why `subprocess` and not `sh`: measured by bench/runner_bench.py (per-command cost, output).
In short, `sh` runs three threads per command and its own timeout polls (100 ms per command);
what we need of it (a session, pipes, a deadline, the exit status) is what `Popen.communicate`
does with one `select` loop, and the tree kill needs the pid and session that we own here.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from reconciler.frozen import frozen

MARKER = "RECONCILER_PROCESS_TREE"  # environment variable naming the tree a process belongs to
GRACE_S = 2.0  # between SIGTERM and SIGKILL
_ROUNDS = 10  # scans after SIGKILL until no member is left (a fork bomb is not our adversary)


@frozen
class Finished:
    """How a child ended: its exit code (negative: the signal that killed it) and its output.

    `timed_out` is True when the deadline ended it; the output is what it wrote until then.
    """

    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool
    duration_s: float


@frozen
class Credentials:
    """The account a child is started as: the fork drops to it before `exec`, so nothing of
    the child's environment ever reaches a process (or a dynamic loader) of ours."""

    uid: int
    gid: int
    groups: tuple[int, ...]


def run_process(
    argv: tuple[str, ...],
    *,
    env: Mapping[str, str],
    stdin: bytes | None,
    timeout_s: float,
    grace_s: float = GRACE_S,
    credentials: Credentials | None = None,
    guard: bool = False,
) -> Finished:
    """Run `argv` (argv[0] an absolute path) in its own session; end its tree at the deadline.
    With `credentials` (as root), the child sets its groups, gid and uid (real, effective and
    saved) to them between fork and exec. `guard`: its tree is also ended should we be killed
    meanwhile (the watchdog).

    Raises OSError only when the program cannot be started at all.
    """

    tree = secrets.token_hex(8)
    if guard:
        # Announced before it starts, by the marker its processes carry: a reconciler killed
        # between the start and the announcement with the pid would leave the tree behind.
        _Watchdog.announce(tree)
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**env, MARKER: tree},
        start_new_session=True,
        close_fds=True,
        user=None if credentials is None else credentials.uid,
        group=None if credentials is None else credentials.gid,
        extra_groups=None if credentials is None else list(credentials.groups),
    )
    if guard:
        _Watchdog.announce(tree, proc.pid)
    try:
        return _finish(proc, stdin, tree, started, timeout_s, grace_s)
    finally:
        if guard:
            _Watchdog.forget(tree)


def _finish(
    proc: subprocess.Popen[bytes],
    stdin: bytes | None,
    tree: str,
    started: float,
    timeout_s: float,
    grace_s: float,
) -> Finished:
    timed_out = False
    try:
        out, err = proc.communicate(stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_tree(proc.pid, tree, grace_s=grace_s)
        out, err = _drain(proc, grace_s)
    except BaseException:
        # KeyboardInterrupt or a bug: never leave the tree behind us.
        kill_tree(proc.pid, tree, grace_s=0.0)
        proc.wait()
        raise
    if not timed_out and _group_alive(proc.pid):
        kill_tree(proc.pid, tree, grace_s=grace_s)
    return Finished(
        exit_code=proc.returncode,
        stdout=out or b"",
        stderr=err or b"",
        timed_out=timed_out,
        duration_s=time.monotonic() - started,
    )


def _drain(proc: subprocess.Popen[bytes], grace_s: float) -> tuple[bytes, bytes]:
    """What the killed tree wrote. Every writer of the pipes should be gone now; should one
    have escaped us all the same, we give up its output rather than wait for it forever."""
    try:
        return proc.communicate(timeout=grace_s + 1.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        return b"", b""


def kill_tree(leader: int, tree: str | None, *, grace_s: float, proc: Path = Path("/proc")) -> None:
    """End the process tree of `leader` (see the module docstring): SIGTERM, grace, SIGKILL."""
    members = tree_members(leader, tree, proc)
    _signal_all(leader, members, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        members = tree_members(leader, tree, proc, known=members)
        if not members:
            return
        time.sleep(0.02)
    for _ in range(_ROUNDS):
        members = tree_members(leader, tree, proc, known=members)
        if not members:
            return
        _signal_all(leader, members, signal.SIGKILL)
        time.sleep(0.01)


@frozen
class _Stat:
    pid: int
    ppid: int
    pgrp: int
    session: int
    zombie: bool


def tree_members(
    leader: int, tree: str | None, proc: Path = Path("/proc"), *, known: Iterable[int] = ()
) -> set[int]:
    """The live pids that belong to the tree of `leader` (zombies are already dead)."""
    stats = {s.pid: s for s in _scan(proc)}
    members = {
        s.pid
        for s in stats.values()
        if s.pid == leader or s.pgrp == leader or s.session == leader or s.pid in known
    }
    if tree is not None:
        members |= {pid for pid in stats if pid not in members and _carries(proc, pid, tree)}
    children: dict[int, list[int]] = {}
    for s in stats.values():
        children.setdefault(s.ppid, []).append(s.pid)
    todo = list(members)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in members:
                members.add(child)
                todo.append(child)
    me = os.getpid()
    return {pid for pid in members if pid in stats and not stats[pid].zombie and pid != me}


def _scan(proc: Path) -> Iterable[_Stat]:
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(proc / entry / "stat", "rb") as handle:
                text = handle.read().decode("ascii", errors="replace")
        except OSError:
            continue  # gone meanwhile
        # `comm` may hold spaces and parentheses: the fields we want follow the last ')'.
        fields = text[text.rfind(")") + 2 :].split()
        try:
            yield _Stat(
                int(entry), int(fields[1]), int(fields[2]), int(fields[3]), fields[0] in "ZX"
            )
        except (IndexError, ValueError):
            continue


def _carries(proc: Path, pid: int, tree: str) -> bool:
    try:
        with open(proc / str(pid) / "environ", "rb") as handle:
            environ = handle.read(1 << 20)
    except OSError:
        return False  # not ours to read (another user's process, as a non-root invoker), or gone
    return f"{MARKER}={tree}".encode() in environ.split(b"\0")


def _signal_all(leader: int, members: set[int], sig: signal.Signals) -> None:
    with contextlib.suppress(OSError):
        os.killpg(leader, sig)
    for pid in members:
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # a member changed uid (runuser, sudo): alive, and we may not signal it
    return True


# The watchdog's program: `+TREE PID` announces a command (PID 0: about to start, known by its
# marker only), `-TREE` forgets it; at EOF (the reconciler is gone) every announced tree still
# alive is ended. Run as `python -c`, so it shares nothing with the reconciler's threads; it
# ignores SIGINT/SIGTERM meant for the group.
_WATCHDOG = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
from reconciler.system.process import kill_tree
trees = {}
data = b""
while True:
    chunk = os.read(0, 4096)
    if not chunk:
        break
    data += chunk
    *lines, data = data.split(b"\\n")
    for line in lines:
        word = line.decode("ascii", "replace").split()
        if len(word) == 2 and word[0].startswith("+"):
            trees[word[0][1:]] = int(word[1])
        elif len(word) == 1 and word[0].startswith("-"):
            trees.pop(word[0][1:], None)
for tree, pid in trees.items():
    kill_tree(pid if pid > 0 else -1, tree, grace_s=1.0)
# A command announced but not known to have started may have been between fork and exec,
# not yet carrying its marker: look for it a little longer.
pending = [tree for tree, pid in trees.items() if pid <= 0]
end = time.monotonic() + 2.0
while pending and time.monotonic() < end:
    time.sleep(0.05)
    for tree in pending:
        kill_tree(-1, tree, grace_s=0.2)
"""


class _Watchdog:
    """The one watchdog of this process (started with the first guarded command)."""

    _fd: int | None = None
    _owner: int | None = None  # the pid that started it (a fork must start its own)

    @classmethod
    def _pipe(cls) -> int | None:
        if cls._fd is not None and cls._owner == os.getpid():
            return cls._fd
        import sys

        read_end, write_end = os.pipe()
        os.set_inheritable(write_end, False)
        package = str(Path(__file__).resolve().parents[2])
        try:
            subprocess.Popen(
                [sys.executable, "-S", "-c", _WATCHDOG],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={"PYTHONPATH": package, "PATH": os.defpath},
                close_fds=True,
                cwd="/",
            )
        except OSError:
            os.close(write_end)
            return None  # no watchdog: the commands still run, as before
        finally:
            os.close(read_end)
        cls._fd, cls._owner = write_end, os.getpid()
        return write_end

    @classmethod
    def _send(cls, line: str) -> None:
        fd = cls._pipe()
        if fd is not None:
            with contextlib.suppress(OSError):
                os.write(fd, line.encode("ascii"))

    @classmethod
    def announce(cls, tree: str, pid: int = 0) -> None:
        cls._send(f"+{tree} {pid}\n")

    @classmethod
    def forget(cls, tree: str) -> None:
        cls._send(f"-{tree}\n")
