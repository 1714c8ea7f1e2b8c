"""A private network for the remote-administration tests, made of namespaces the test creates.

    admin namespace (bridge, 10.231.N.1) --veth-- host namespace i (10.231.N.(10+i))

The admin machine's side (ssh, the reconciler under test) runs inside the admin namespace with
`ip netns exec`; each container boots inside its host namespace
(`Container(network_namespace=...)`). Nothing is routed anywhere else: the only addresses any
test traffic reaches are these, in namespaces made here and deleted afterwards.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field


def _ip(*args: str, netns: str | None = None) -> None:
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    subprocess.run(argv, check=True, capture_output=True, text=True)


@dataclass
class PrivateNetwork:
    """An admin namespace with a bridge, and one namespace per host attached to it."""

    subnet: int = field(default_factory=lambda: 100 + os.getpid() % 150)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    hosts: list[str] = field(default_factory=list)

    @property
    def admin(self) -> str:
        return f"rc-adm-{self.tag}"

    def address(self, index: int) -> str:
        return f"10.231.{self.subnet}.{10 + index}"

    def create(self) -> PrivateNetwork:
        _ip("netns", "add", self.admin)
        _ip("link", "set", "lo", "up", netns=self.admin)
        _ip("link", "add", "br0", "type", "bridge", netns=self.admin)
        _ip("addr", "add", f"10.231.{self.subnet}.1/24", "dev", "br0", netns=self.admin)
        _ip("link", "set", "br0", "up", netns=self.admin)
        return self

    def add_host(self) -> tuple[str, str]:
        """A new host namespace, wired to the bridge: (namespace name, its address)."""
        index = len(self.hosts)
        name = f"rc-h{index}-{self.tag}"
        _ip("netns", "add", name)
        self.hosts.append(name)
        _ip("link", "set", "lo", "up", netns=name)
        # Made in the admin namespace, one end moved into the host's: no link ever exists in
        # the root namespace.
        _ip(
            "link",
            "add",
            f"v{index}",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            name,
            netns=self.admin,
        )
        _ip("link", "set", f"v{index}", "master", "br0", netns=self.admin)
        _ip("link", "set", f"v{index}", "up", netns=self.admin)
        _ip("addr", "add", f"{self.address(index)}/24", "dev", "eth0", netns=name)
        _ip("link", "set", "eth0", "up", netns=name)
        return name, self.address(index)

    def admin_argv(self, argv: Sequence[str]) -> list[str]:
        """Run `argv` on the admin machine's side of the network."""
        return ["ip", "netns", "exec", self.admin, *argv]

    def cut(self, index: int) -> None:
        """Unplug host `index` (its veth goes down): connections to it stall, as a lost link does."""
        _ip("link", "set", f"v{index}", "down", netns=self.admin)

    def restore(self, index: int, *, port: int = 22, timeout: float = 60.0) -> None:
        """Plug host `index` back in, and return once its `port` accepts a connection from the
        admin side again: a port brought up is not yet forwarding, and under load (CI, the
        fast suite beside) the next command's connect failed with "no route to host"."""
        _ip("link", "set", f"v{index}", "up", netns=self.admin)
        probe = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 2)"
        deadline = time.monotonic() + timeout
        while True:
            argv = self.admin_argv([sys.executable, "-c", probe, self.address(index), str(port)])
            if subprocess.run(argv, capture_output=True, check=False).returncode == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"host {index} not reachable on port {port} after {timeout} s")
            time.sleep(0.5)

    def destroy(self) -> None:
        for name in [*self.hosts, self.admin]:
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "delete", name)
        self.hosts.clear()
