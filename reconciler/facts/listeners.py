"""Who listens on a TCP port: /proc/net/tcp{,6} for the sockets, /proc/<pid>/fd for the owners.

Read in-process (no `ss`, no `lsof`): the kernel's tables say which socket inode listens on a
port and as which uid; the `socket:[inode]` links under /proc/<pid>/fd say which process holds
it. Without root we can only see our own processes' fds: a listener whose process we cannot see
is reported with its uid alone (an admin account acting as the user through sudo also looks as
the user, as the user itself would).

The parse functions are pure (text in, records out) and tested against recorded kernel output;
`ListenersProbe.read` is the only part that touches the filesystem.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import replace
from functools import partial
from pathlib import Path

from reconciler.core.host import HostContext
from reconciler.core.probe import Probe
from reconciler.facts.codec import RecordedHost, Redaction, recorded
from reconciler.frozen import frozen
from reconciler.system.as_user import acting_account, call_as

TCP_LISTEN = 0x0A  # include/net/tcp_states.h: TCP_LISTEN


@frozen
class Socket:
    """A listening TCP socket from /proc/net/tcp or tcp6."""

    address: str
    port: int
    uid: int
    inode: int


@recorded
@frozen
class Listener:
    """A listening socket on a port we care about, with its process when we could see it."""

    address: str
    port: int
    uid: int
    inode: int
    pid: int | None = None
    cmdline: str = ""
    cgroup: tuple[str, ...] = ()  # the unified-hierarchy path's components

    def describe(self) -> str:
        """`PID 4242 (python3 -m http.server 18789)`, or the uid when the process is hidden."""
        if self.pid is None:
            return f"a process of uid {self.uid} we cannot see (run as root to name it)"
        return f"PID {self.pid} ({self.cmdline or '?'})"

    def in_unit(self, unit: str) -> bool:
        """True when the process runs in `unit`'s cgroup (systemd puts every child there too)."""
        return unit in self.cgroup

    def redacted(self, redaction: Redaction) -> Listener:
        """A command line may carry a secret (`--token X`): masked in snapshots."""
        return replace(self, cmdline=redaction.text(self.cmdline))


def _address(hex_addr: str) -> str:
    """The kernel prints each 32-bit word of the address in host (little-endian) byte order."""
    raw = bytes.fromhex(hex_addr)
    if len(raw) not in (4, 16):
        raise ValueError(f"bad address {hex_addr!r}")
    swapped = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(swapped))


def parse_proc_net_tcp(text: str) -> tuple[Socket, ...]:
    """Listening sockets of a /proc/net/tcp or /proc/net/tcp6 table (header line skipped)."""
    sockets: list[Socket] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        local, state, uid, inode = fields[1], fields[3], fields[7], fields[9]
        if int(state, 16) != TCP_LISTEN:
            continue
        hex_addr, _, hex_port = local.partition(":")
        sockets.append(Socket(_address(hex_addr), int(hex_port, 16), int(uid), int(inode)))
    return tuple(sockets)


def socket_inode(link: str) -> int | None:
    """`socket:[12345]` (an fd's readlink) -> 12345; anything else -> None."""
    if link.startswith("socket:[") and link.endswith("]"):
        return int(link[8:-1])
    return None


def parse_cmdline(raw: bytes) -> str:
    """/proc/<pid>/cmdline (NUL-separated argv) -> one readable line."""
    return " ".join(part.decode("utf-8", "replace") for part in raw.split(b"\0") if part)


def parse_cgroup(text: str) -> tuple[str, ...]:
    """/proc/<pid>/cgroup -> the path components of the unified (`0::`) hierarchy.

    On a pure cgroup v1 host there is no `0::` line; the `name=systemd` line carries the same
    path, so it is used instead.
    """
    fallback: tuple[str, ...] = ()
    for line in text.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        parts = tuple(p for p in path.split("/") if p)
        if hierarchy == "0" and controllers == "":
            return parts
        if controllers == "name=systemd":
            fallback = parts
    return fallback


@recorded
@frozen
class ListenersProbe(Probe[tuple[Listener, ...]]):
    """Listening sockets on `ports` (any address), each with its process when visible."""

    ports: tuple[int, ...]

    def read(self, host: HostContext) -> tuple[Listener, ...]:
        proc = host.proc_root
        wanted = set(self.ports)
        sockets: list[Socket] = []
        for table in ("tcp", "tcp6"):
            try:
                text = (proc / "net" / table).read_text(encoding="ascii")
            except FileNotFoundError:  # no IPv6 on this kernel
                continue
            sockets.extend(s for s in parse_proc_net_tcp(text) if s.port in wanted)
        if not sockets:
            return ()
        inodes = {s.inode for s in sockets}
        owners = _owners(proc, inodes)
        if host.sudo_to_user and not host.is_root and len(owners) < len(inodes):
            # An admin account sees the user's processes' fds only as the user (its helper).
            found = call_as(acting_account(host), partial(_owner_pairs, proc, inodes - set(owners)))
            owners.update((int(inode), int(pid)) for inode, pid in found)
        return tuple(_listener(proc, s, owners.get(s.inode)) for s in sockets)

    def answer_from(self, recorded: RecordedHost) -> tuple[Listener, ...] | None:
        """The recorded sockets on these ports (a snapshot records every listening socket)."""
        if recorded.listeners is None:
            return None
        wanted = set(self.ports)
        return tuple(x for x in recorded.listeners if x.port in wanted)


def _owners(proc: Path, inodes: set[int]) -> dict[int, int]:
    """inode -> pid, scanning /proc/<pid>/fd until every inode is found (unreadable fds skipped)."""
    found: dict[int, int] = {}
    try:
        pids = sorted(int(e) for e in os.listdir(proc) if e.isdigit())
    except OSError:
        return found
    for pid in pids:
        fd_dir = proc / str(pid) / "fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:  # another user's process, or it just exited
            continue
        for fd in fds:
            try:
                inode = socket_inode(os.readlink(fd_dir / fd))
            except OSError:
                continue
            if inode in inodes and inode not in found:
                found[inode] = pid
        if len(found) == len(inodes):
            break
    return found


def _owner_pairs(proc: Path, inodes: set[int]) -> list[list[int]]:
    """`_owners` as JSON can carry it (from the helper acting as the user)."""
    return [[inode, pid] for inode, pid in _owners(proc, inodes).items()]


def _listener(proc: Path, sock: Socket, pid: int | None) -> Listener:
    if pid is None:
        return Listener(sock.address, sock.port, sock.uid, sock.inode)
    base = proc / str(pid)
    try:
        cmdline = parse_cmdline((base / "cmdline").read_bytes())
    except OSError:
        cmdline = ""
    try:
        cgroup = parse_cgroup((base / "cgroup").read_text(encoding="utf-8", errors="replace"))
    except OSError:
        cgroup = ()
    return Listener(sock.address, sock.port, sock.uid, sock.inode, pid, cmdline, cgroup)
