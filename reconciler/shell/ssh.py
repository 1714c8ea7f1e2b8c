"""OpenSSH as the transport to a remote host: the system `ssh` client, one multiplexed connection.

Why the system client and not a Python SSH library: users' `~/.ssh/config` (ProxyJump,
IdentityFile, User, agent forwarding, certificates) must work exactly as it does for `ssh HOST`,
and host keys must be checked exactly as OpenSSH checks them. We never pass
`StrictHostKeyChecking=no`; `BatchMode=yes` turns every interactive question (a password, an
unknown host key) into a failure we can explain, instead of a hang under a timer.

One connection per host per run: the first call starts a control master (`ControlMaster=auto`)
whose socket lives in a private 0700 directory of ours; every later call rides on it. `close()`
stops the master and removes the directory.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

# ssh's own exit code for "the connection failed"; anything else is the remote command's.
SSH_FAILED = 255


class SshError(Exception):
    """The connection could not be made or was lost; the message says why and what to do."""


@dataclass(frozen=True)
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
            raise ValueError(f"{text!r}: the port must be a number from 1 to 65535") from None
        host = parts.hostname
        if not host or not _HOST.fullmatch(host):
            raise ValueError(f"{text!r}: missing or invalid host name")
        user = unquote(parts.username) if parts.username else None
        if user is not None and not _USER.fullmatch(user):
            raise ValueError(f"{text!r}: invalid user name {user!r}")
        return cls(host=host, user=user, port=port)

    def __str__(self) -> str:
        who = f"{self.user}@" if self.user else ""
        where = f":{self.port}" if self.port else ""
        return f"ssh://{who}{self.host}{where}"


_HOST = re.compile(r"[A-Za-z0-9_.:-]{1,253}")
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")


@dataclass(frozen=True)
class RemoteResult:
    """What a remote command did: its exit code and output (bytes, as the program wrote them)."""

    exit_code: int
    stdout: bytes
    stderr: bytes


class SshSession:
    """One multiplexed OpenSSH connection to a target, for the length of one run.

    `options` are extra `-o KEY=VALUE` / `-F FILE` arguments the user chose (tests use them to
    point at their own known_hosts and key); we add only the multiplexing options and BatchMode.
    """

    def __init__(
        self,
        target: SshTarget,
        *,
        options: Sequence[str] = (),
        ssh_program: str = "ssh",
        connect_timeout_s: int = 10,
    ) -> None:
        self.target = target
        self.options = tuple(options)
        self.ssh_program = ssh_program
        self.connect_timeout_s = connect_timeout_s
        self._control_dir: str | None = None

    # --- the argv --------------------------------------------------------------------------

    def _control_path(self) -> str:
        if self._control_dir is None:
            # mkdtemp creates the directory 0700: nobody else can reach our master's socket.
            self._control_dir = tempfile.mkdtemp(prefix="reconciler-ssh-")
        return os.path.join(self._control_dir, "%C")

    def base_argv(self) -> list[str]:
        """`ssh` with our options and the destination, ready for a remote command."""
        argv = [
            self.ssh_program,
            *self.options,
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={self.connect_timeout_s}",
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={self._control_path()}",
            "-o",
            "ControlPersist=60",
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
        # `--` ends ssh's options: a host name can never be read as one.
        return [*argv, "--", self.target.host]

    def command_argv(self, remote_argv: Sequence[str]) -> list[str]:
        """The local argv that runs `remote_argv` there.

        ssh joins its arguments with spaces for the remote shell, so each argument is quoted
        here: the remote program gets exactly `remote_argv`, never a reinterpreted string.
        """
        return [*self.base_argv(), shlex.join(remote_argv)]

    # --- running ---------------------------------------------------------------------------

    def run(
        self, remote_argv: Sequence[str], *, stdin: bytes = b"", timeout_s: float = 600
    ) -> RemoteResult:
        """Run one remote command to completion; connection failures raise SshError."""
        try:
            done = subprocess.run(
                self.command_argv(remote_argv),
                input=stdin,
                capture_output=True,
                timeout=timeout_s,
                check=False,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise SshError(
                f"the ssh client {self.ssh_program!r} is not installed "
                "(Debian: apt-get install openssh-client)"
            ) from None
        except subprocess.TimeoutExpired:
            raise SshError(f"{self.target}: no answer within {timeout_s:g} s") from None
        result = RemoteResult(done.returncode, done.stdout, done.stderr)
        if result.exit_code == SSH_FAILED:
            raise SshError(explain_failure(self.target, result.stderr.decode(errors="replace")))
        return result

    def stream(
        self, remote_argv: Sequence[str], *, stdin: bytes = b""
    ) -> Iterator[bytes | RemoteResult]:
        """Run a remote command, yielding its stdout line by line, then its RemoteResult.

        stderr is collected and returned at the end (it is small: errors, not progress).
        """
        try:
            proc = subprocess.Popen(
                self.command_argv(remote_argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise SshError(f"the ssh client {self.ssh_program!r} is not installed") from None
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        try:
            proc.stdin.write(stdin)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the remote side ended early; its exit status tells why
        yield from iter(proc.stdout.readline, b"")
        stderr = proc.stderr.read()
        code = proc.wait()
        if code == SSH_FAILED:
            raise SshError(explain_failure(self.target, stderr.decode(errors="replace")))
        yield RemoteResult(code, b"", stderr)

    def close(self) -> None:
        """Stop the control master (if one runs) and remove its private directory."""
        if self._control_dir is None:
            return
        subprocess.run(
            [*self.base_argv()[:-2], "-O", "exit", "--", self.target.host],
            capture_output=True,
            timeout=10,
            check=False,
        )
        shutil.rmtree(self._control_dir, ignore_errors=True)
        self._control_dir = None

    def __enter__(self) -> SshSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
