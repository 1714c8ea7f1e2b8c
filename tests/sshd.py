"""A real OpenSSH server for tests: started by the test on a free loopback port, torn down after.

Its own host key, authorized_keys and client config live in a temporary folder; the client side
passes `-F` so nothing of the invoking user's ~/.ssh is read or changed. `SetEnv` points the
remote XDG_CACHE_HOME and XDG_STATE_HOME into the folder, so the agent cache and the state a
command records there (a suspension) are the test's own. The server logs at
VERBOSE, which records one line per connection and per session: tests count round trips there.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"


@dataclass
class RunningSshd:
    """A running sshd and everything a client needs to reach it."""

    root: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"ssh://root@127.0.0.1:{self.port}"

    @property
    def client_options(self) -> list[str]:
        return ["-F", str(self.root / "ssh_config")]

    @property
    def cache_home(self) -> Path:
        return self.root / "remote-cache"

    @property
    def state_home(self) -> Path:
        """The target's XDG_STATE_HOME: what a command there records stays the test's own."""
        return self.root / "remote-state"

    def log(self) -> str:
        return (self.root / "sshd.log").read_text(errors="replace")

    def count(self, needle: str) -> int:
        return self.log().count(needle)

    def connections(self) -> int:
        return self.count("Accepted publickey")

    def sessions(self) -> int:
        return self.count("Starting session:")

    def set_known_host_key(self, public_key_file: Path) -> None:
        key = " ".join(public_key_file.read_text().split()[:2])
        (self.root / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {key}\n")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def start_sshd(root: Path) -> RunningSshd:
    """Start sshd (as root, the only user the tests log in as) and wait until it answers."""
    if not os.path.exists(SSHD) or shutil.which("ssh") is None:
        if os.environ.get("RECONCILER_E2E_REQUIRED"):
            pytest.fail("openssh-server/openssh-client are not installed (CI must install them)")
        pytest.skip("openssh-server and openssh-client are needed")
    if os.geteuid() != 0:
        pytest.skip("the test sshd logs in as root and so must run as root")
    root.mkdir(parents=True, exist_ok=True)
    for name in ("host_key", "client_key"):
        _keygen(root / name)
    shutil.copy(root / "client_key.pub", root / "authorized_keys")
    (root / "remote-cache").mkdir(mode=0o700)
    port = _free_port()
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root}/host_key\n"
        f"AuthorizedKeysFile {root}/authorized_keys\nPidFile {root}/sshd.pid\n"
        "StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UsePAM no\nPermitRootLogin prohibit-password\nLogLevel VERBOSE\n"
        f"SetEnv XDG_CACHE_HOME={root}/remote-cache XDG_STATE_HOME={root}/remote-state\n"
    )
    (root / "ssh_config").write_text(
        f"Host *\n  IdentityFile {root}/client_key\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {root}/known_hosts\n  GlobalKnownHostsFile /dev/null\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    process = subprocess.Popen(
        [SSHD, "-D", "-f", str(root / "sshd_config"), "-E", str(root / "sshd.log")],
        stdin=subprocess.DEVNULL,
    )
    server = RunningSshd(root, port, process)
    server.set_known_host_key(root / "host_key.pub")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return server
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited: {(root / 'sshd.log').read_text()}")
        time.sleep(0.05)
    server.stop()
    raise RuntimeError("sshd did not start listening within 10 s")


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[RunningSshd]:
    server = start_sshd(tmp_path / "sshd")
    yield server
    server.stop()
