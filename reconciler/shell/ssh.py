"""OpenSSH as the transport to a remote host: the system `ssh` client, one multiplexed connection.

Why the system client and not a Python SSH library: users' `~/.ssh/config` (ProxyJump,
IdentityFile, User, agent forwarding, certificates) must work exactly as it does for `ssh HOST`,
and host keys must be checked exactly as OpenSSH checks them. We never pass
`StrictHostKeyChecking=no`; `BatchMode=yes` turns every interactive question (a password, an
unknown host key) into a failure we can explain, instead of a hang under a timer.

One connection per host: the first call starts a control master (`ssh -M -N`) whose socket
lives in a private 0700 directory of ours; every call rides on it. By default (`persist_s=0`)
the master is our own child, not a daemon: `close()` stops it and removes the directory. With
`persist_s` > 0 the master stays up that many idle seconds after the run (OpenSSH's
ControlPersist, what Ansible does by default), in the login user's own private folder, so the
next run to the same host with the same options skips the handshake (docs/remote.md). Either
way every remote command's ssh dies with us (PR_SET_PDEATHSIG), also when we are killed, so a
remote command never outlives its client.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import selectors
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from reconciler.frozen import frozen
from reconciler.shell.private_folder import own_private_folder, user_cache_home

# ssh's own exit code for "the connection failed"; anything else is the remote command's.
SSH_FAILED = 255


class SshError(Exception):
    """The connection could not be made or was lost; the message says why and what to do."""


@frozen
class SshTarget:
    """Where to connect: `ssh://[user@]host[:port]`, or `host.ssh` in the spec."""

    host: str
    user: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> SshTarget:
        """`ssh://[user@]host[:port]` -> SshTarget; a clear ValueError for anything else."""
        if not text.startswith("ssh://"):
            raise ValueError(f"{text!r} is not an ssh target: write ssh://[user@]host[:port]")
        parts = urlsplit(text)
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.password:
            raise ValueError(
                f"{text!r}: an ssh target is only ssh://[user@]host[:port] "
                "(no path, password, query or fragment)"
            )
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port is not None and not 1 <= port <= 65535:
            # Port 0 is no port: ssh would fall back to its default one without a word.
            raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
        host = parts.hostname
        if not host or not _HOST.fullmatch(host):
            raise ValueError(
                f"{text!r}: missing or invalid host name (letters, digits, `_`, `.`, `:` "
                "and `-`, never `-` first: ssh would read it as an option)"
            )
        user = None if parts.username is None else unquote(parts.username)
        if user is not None and not _USER.fullmatch(user):
            raise ValueError(f"{text!r}: invalid user name {user!r}")
        return cls(host=host, user=user, port=port)

    def __str__(self) -> str:
        who = f"{self.user}@" if self.user else ""
        where = f":{self.port}" if self.port else ""
        return f"ssh://{who}{self.host}{where}"


_HOST = re.compile(r"[A-Za-z0-9_:][A-Za-z0-9_.:-]{0,252}")  # never `-` first: an ssh option
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")


@frozen
class RemoteResult:
    """What a remote command did: its exit code and output (bytes, as the program wrote them)."""

    exit_code: int
    stdout: bytes
    stderr: bytes


# No byte at all (not even the agent's heartbeat) for this long: the target or link is stuck.
IDLE_TIMEOUT_S = 90.0
# What we keep of a remote command's stderr: its end says why it failed; the rest is dropped
# while it is read, so a chatty command can never block on a full pipe.
STDERR_KEEP = 256 * 1024
_PR_SET_PDEATHSIG = 1


@functools.cache
def _prctl() -> Callable[..., int] | None:
    import ctypes

    try:
        function: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: no parent-death signal
        return None
    return function


def _die_with_parent() -> None:
    """In the forked child before exec: get SIGTERM when the process that started us dies, so a
    client killed with SIGKILL leaves no ssh (and so no remote session) behind. (prctl is looked
    up before the fork: the child only calls it.)"""
    prctl = _prctl()
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_LIVE: set[subprocess.Popen[bytes]] = set()  # every ssh process of ours that still runs
_LIVE_LOCK = threading.Lock()


def _track(proc: subprocess.Popen[bytes]) -> None:
    with _LIVE_LOCK:
        _LIVE.add(proc)


def _forget(proc: subprocess.Popen[bytes]) -> None:
    with _LIVE_LOCK:
        _LIVE.discard(proc)


def terminate_all() -> None:
    """End every ssh process of ours (mux clients and masters): on SIGTERM, before we exit, so
    that no remote command outlives the client that asked for it."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for proc in live:
        with contextlib.suppress(OSError):
            proc.terminate()


class SshSession:
    """One multiplexed OpenSSH connection to a target, for the length of one run.

    `options` are extra `-o KEY=VALUE` / `-F FILE` arguments the user chose (tests use them to
    point at their own known_hosts and key); we add only the multiplexing options and BatchMode.
    The control master is our own child process (`ssh -M -N`, never a daemon): `close()` ends
    it, and it dies with us when we are killed.
    """

    def __init__(
        self,
        target: SshTarget,
        *,
        options: Sequence[str] = (),
        ssh_program: str = "ssh",
        connect_timeout_s: int = 10,
        persist_s: int = 0,
    ) -> None:
        self.target = target
        self.options = tuple(options)
        self.ssh_program = ssh_program
        self.connect_timeout_s = connect_timeout_s
        self.persist_s = persist_s
        # Decided once: the folder is checked (and made) here, not on every argv or poll.
        self._shared_path = _shared_control_path(self._identity()) if persist_s > 0 else None
        self._shared = self._shared_path is not None
        self._control_dir: str | None = None
        self._master: subprocess.Popen[bytes] | None = None
        self._master_ready = False  # its socket is up (it connected)
        self._master_deadline = 0.0
        self._master_lock = threading.Lock()

    # --- the argv --------------------------------------------------------------------------

    def _identity(self) -> str:
        """What makes two connections interchangeable: the same client, options and target."""
        return "\0".join((self.ssh_program, *self.options, str(self.target)))

    def _control_path(self) -> str:
        if self._shared_path is not None:
            return self._shared_path
        if self._control_dir is None:
            # mkdtemp creates the directory 0700: nobody else can reach our master's socket.
            self._control_dir = tempfile.mkdtemp(prefix="reconciler-ssh-")
        return os.path.join(self._control_dir, "master")

    def _ssh_argv(self, master: str) -> list[str]:
        argv = [
            self.ssh_program,
            *self.options,
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={self.connect_timeout_s}",
            "-o",
            f"ControlMaster={master}",
            "-o",
            f"ControlPath={self._control_path()}",
            "-o",
            f"ControlPersist={self.persist_s}s"
            if self._shared and master == "yes"
            else "ControlPersist=no",
            # A link that dies silently is noticed in 30 s instead of TCP's two hours.
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=6",
        ]
        if self.target.port:
            argv += ["-p", str(self.target.port)]
        if self.target.user:
            argv += ["-l", self.target.user]
        return argv

    def base_argv(self) -> list[str]:
        """`ssh` with our options and the destination, ready for a remote command (it rides on
        the master's connection)."""
        # `--` ends ssh's options: a host name can never be read as one.
        return [*self._ssh_argv("no"), "--", self.target.host]

    def command_argv(self, remote_argv: Sequence[str]) -> list[str]:
        """The local argv that runs `remote_argv` there.

        ssh joins its arguments with spaces for the remote shell, so each argument is quoted
        here: the remote program gets exactly `remote_argv`, never a reinterpreted string.
        """
        return [*self.base_argv(), shlex.join(remote_argv)]

    # --- the master ------------------------------------------------------------------------

    def _popen(self, argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        _prctl()  # resolved here, in the parent, never in the forked child
        try:
            proc = subprocess.Popen(argv, start_new_session=True, preexec_fn=_die_with_parent, **kw)
        except FileNotFoundError:
            raise SshError(
                f"the ssh client {self.ssh_program!r} is not installed "
                "(Debian: apt-get install openssh-client)"
            ) from None
        _track(proc)
        return proc

    def start(self) -> None:
        """Begin connecting (the master) without waiting for it: the handshake runs beside what
        this side does next (building the request); the first command waits for it, and a
        failure to connect is that command's SshError."""
        with self._master_lock:
            if self._master is None:
                self._launch_master()

    def _launch_master(self) -> None:
        socket_path = self._control_path()
        if self._shared and _answers(socket_path):
            # A master an earlier run left up: ride on it (no process of ours to start).
            self._master = None
            self._master_ready = True
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(socket_path)  # a dead master's socket
        self._master = self._popen(
            [*self._ssh_argv("yes"), "-N", "--", self.target.host],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._master_ready = False
        self._master_deadline = time.monotonic() + self.connect_timeout_s + 5

    def _ensure_master(self) -> None:
        """Connect once (the master), or find the connection up; SshError says why not."""
        with self._master_lock:
            if self._master_ready and (
                self._master.poll() is None
                if self._master is not None
                else _answers(self._control_path())
            ):
                return
            if self._master is None or self._master_ready:  # never started, or up and lost since
                self._launch_master()
            master = self._master
            if master is None:  # a persisted master answered
                return
            # A persisted master forks into the background once connected and its first
            # process exits 0 (the socket is then there); a failure exits 255 with the reason.
            while not os.path.exists(self._control_path()) or (
                self._shared and master.poll() is None and not _answers(self._control_path())
            ):
                if master.poll() is not None and (
                    master.returncode != 0 or not os.path.exists(self._control_path())
                ):
                    _forget(master)
                    self._master = None
                    stderr = master.stderr.read() if master.stderr else b""
                    raise SshError(explain_failure(self.target, stderr.decode(errors="replace")))
                if time.monotonic() > self._master_deadline:
                    self._end(master)
                    self._master = None
                    raise SshError(f"{self.target}: the connection timed out")
                time.sleep(0.005)
            self._master_ready = True
            if master.poll() is not None:  # persisted: in the background now, not our child
                _forget(master)
                self._master = None
            elif master.stderr is not None:  # the master's later warnings: not ours to show
                threading.Thread(target=_drain, args=(master.stderr,), daemon=True).start()

    @staticmethod
    def _end(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _forget(proc)

    # --- running ---------------------------------------------------------------------------

    def run(
        self, remote_argv: Sequence[str], *, stdin: bytes = b"", timeout_s: float = 600
    ) -> RemoteResult:
        """Run one remote command to completion; connection failures raise SshError."""
        stdout = []
        finished: RemoteResult | None = None
        for item in self.stream(remote_argv, stdin=stdin, idle_timeout_s=timeout_s):
            if isinstance(item, RemoteResult):
                finished = item
            else:
                stdout.append(item)
        assert finished is not None
        return RemoteResult(finished.exit_code, b"".join(stdout), finished.stderr)

    def stream(
        self,
        remote_argv: Sequence[str],
        *,
        stdin: bytes = b"",
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        heartbeat: bytes = b"",
    ) -> Iterator[bytes | RemoteResult]:
        """Run a remote command, yielding its stdout line by line, then its RemoteResult.

        stderr is read all along (so a chatty command never blocks on a full pipe) and its last
        STDERR_KEEP bytes are returned at the end, without the `heartbeat` lines the remote
        program writes there to show it is alive. No byte on either for `idle_timeout_s` (the
        agent's heartbeat counts): the command is ended and SshError says so. Whatever way this
        ends (an error, the caller stopping early, Ctrl-C), the local ssh is ended with it.
        """
        self._ensure_master()
        proc = self._popen(
            self.command_argv(remote_argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        errors = _StderrTail(heartbeat)
        alive = [time.monotonic()]
        reader = threading.Thread(target=errors.read, args=(proc.stderr, alive), daemon=True)
        reader.start()
        writer = threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True)
        writer.start()
        try:
            yield from _lines(proc.stdout, alive, idle_timeout_s, self.target)
            reader.join()
            code = proc.wait()
        finally:
            self._end(proc)
        if code == SSH_FAILED:
            raise SshError(explain_failure(self.target, errors.text()))
        yield RemoteResult(code, b"", errors.data())

    def close(self) -> None:
        """Stop the control master (if one runs) and remove its private directory; a persisted
        master (in the background by now) stays for its idle seconds."""
        if self._master is not None:
            self._end(self._master)
            self._master = None
        self._master_ready = False
        if self._control_dir is not None:
            shutil.rmtree(self._control_dir, ignore_errors=True)
            self._control_dir = None

    def __enter__(self) -> SshSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _answers(socket_path: str) -> bool:
    """A master listens on `socket_path` (a socket file left by a dead one refuses)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(socket_path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


# Unix socket paths hold 108 bytes; ssh adds a 17-character suffix while it creates one.
_SOCKET_PATH_MAX = 90


def _shared_control_path(identity: str) -> str | None:
    """Where a persisted master's socket lives: `$XDG_RUNTIME_DIR/reconciler/ssh/` (else
    `~/.cache/reconciler/ssh/`), one name per client, options and target. None when that folder
    is not ours alone (private_folder.py: a socket there runs commands on the target as us) or
    the path is too long for a socket: then the connection is not persisted."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    base = runtime if os.path.isabs(runtime) else user_cache_home()
    folder = os.path.join(base, "reconciler", "ssh")
    if not own_private_folder(folder):
        return None
    name = hashlib.sha256(identity.encode()).hexdigest()[:20]
    path = os.path.join(folder, name)
    return path if len(path.encode()) <= _SOCKET_PATH_MAX else None


def _drain(stream: IO[bytes]) -> None:
    while stream.read(65536):
        pass


def _feed(stream: IO[bytes], data: bytes) -> None:
    """Write the request in a thread of its own: a target that never reads it cannot stall us."""
    try:
        stream.write(data)
        stream.close()
    except (BrokenPipeError, OSError, ValueError):
        pass  # the remote side ended early; its exit status tells why


class _StderrTail:
    """The end of a stream, read to its end in a thread; heartbeats count as life, not text."""

    def __init__(self, heartbeat: bytes) -> None:
        self._buffer = bytearray()
        self._heartbeat = heartbeat

    def read(self, stream: IO[bytes], alive: list[float]) -> None:
        for chunk in iter(lambda: stream.read1(65536), b""):  # type: ignore[attr-defined]
            alive[0] = time.monotonic()
            self._buffer += chunk
            if len(self._buffer) > 2 * STDERR_KEEP:
                del self._buffer[: len(self._buffer) - STDERR_KEEP]

    def data(self) -> bytes:
        # Heartbeats are whole lines written at once; one cut in half at the trimmed start is
        # harmless text.
        data = bytes(self._buffer[-STDERR_KEEP:])
        return data.replace(self._heartbeat, b"") if self._heartbeat else data

    def text(self) -> str:
        return self.data().decode(errors="replace")


def _lines(
    stream: IO[bytes], alive: list[float], idle_timeout_s: float, target: SshTarget
) -> Iterator[bytes]:
    """stdout's lines as they come; SshError when neither stdout nor stderr moved for too long."""
    pending = b""
    fd = stream.fileno()
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            if not selector.select(timeout=1.0):
                if time.monotonic() - alive[0] > idle_timeout_s:
                    raise SshError(
                        f"{target}: no answer for {idle_timeout_s:g} s (the target or the link "
                        "is stuck); the remote command was ended"
                    )
                continue
            chunk = os.read(fd, 65536)
            alive[0] = time.monotonic()
            if not chunk:
                break
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                yield line + b"\n"
    if pending:
        yield pending


# What OpenSSH prints, and what we tell the user instead. Order matters: the first match wins.
# {host}: the target as given; {known}: its name in known_hosts; {remove}: the command that
# removes the recorded key; {login}: the ssh command that connects to it as we do.
_FAILURES: tuple[tuple[str, str], ...] = (
    (
        "REMOTE HOST IDENTIFICATION HAS CHANGED",
        "the host key of {host} has CHANGED since it was recorded in known_hosts; refusing to "
        "connect. If the host was reinstalled, verify the new key out of band, then remove the "
        "old one with `{remove}`",
    ),
    (
        "Host key verification failed",
        "the host key of {host} is not known; refusing to connect without checking it. Connect "
        "once with `{login}` and verify the fingerprint, or add the key to known_hosts "
        "(under the name {known})",
    ),
    (
        "Permission denied",
        "{host} refused our credentials (key or agent); check `{login}` works without a "
        "password prompt (we run ssh with BatchMode=yes)",
    ),
    ("Connection refused", "{host}: connection refused (is sshd running, is the port right?)"),
    ("Could not resolve hostname", "{host}: the host name does not resolve"),
    ("timed out", "{host}: the connection timed out"),
    ("No route to host", "{host}: no route to host"),
    ("Connection closed", "{host}: the connection was closed by the remote side"),
)
# OpenSSH's own fix for a changed key names the known_hosts file and the exact entry.
_REMOVE_WITH = re.compile(r"^\s*(ssh-keygen -f .* -R .*?)\s*$", re.MULTILINE)


def known_hosts_name(target: SshTarget) -> str:
    """The name known_hosts records the target's key under: the host, `[host]:port` off 22."""
    if target.port in (None, 22):
        return target.host
    return f"[{target.host}]:{target.port}"


def login_command(target: SshTarget) -> str:
    """`ssh [-p PORT] [USER@]HOST`: how a person connects as we do (shell-quoted)."""
    argv = ["ssh", *(["-p", str(target.port)] if target.port else [])]
    return shlex.join([*argv, f"{target.user}@{target.host}" if target.user else target.host])


def explain_failure(target: SshTarget, stderr: str) -> str:
    """Pure: ssh's stderr for a failed connection -> one message that says what to do."""
    offered = _REMOVE_WITH.search(stderr)
    remove = (
        offered.group(1) if offered else shlex.join(["ssh-keygen", "-R", known_hosts_name(target)])
    )
    for needle, message in _FAILURES:
        if needle in stderr:
            return message.format(
                host=target,
                known=known_hosts_name(target),
                remove=remove,
                login=login_command(target),
            )
    last = next((line for line in reversed(stderr.splitlines()) if line.strip()), "")
    if not last:
        # A multiplexed call whose control master died (the link dropped, keepalives went
        # unanswered) ends with 255 and says nothing itself.
        return f"{target}: the connection was lost (the link dropped or the host stopped answering)"
    return f"{target}: ssh failed: {last.strip()}"
