"""Throwaway Debian bookworm machines with a real systemd + logind, booted in systemd-nspawn.

The host's PID 1 is not systemd, so every test that needs real ``systemctl --user``, linger and
a reboot gets a container of its own (docs/host-facts.md §4)::

    c = Container(tarball=images.ensure_rootfs())
    c.prepare()          # untar a private copy of the cached rootfs, install test assets
    c.boot()             # systemd-nspawn -b ..., wait until `systemctl is-system-running` is ok
    c.run(["loginctl", "enable-linger", "user"])
    c.run(["systemctl", "--user", "status"], user="user")
    c.reboot()           # clean poweroff, then boot the same rootfs directory again
    c.destroy()          # poweroff (kill when it hangs) and delete the rootfs copy

Inside every container: user ``user`` (uid 1000, /home/user); ``/src`` = this repository bound
read-only; ``reconciler`` (``/opt/r`` venv importing ``/src``); the stand-in gateway as
``/usr/local/bin/clawdbot`` (``assets/clawdbot``; also ``/usr/local/bin/clawdbot-standin``) or
the real one (``real_gateway=``); the fake ``tailscale`` from ``tests/fakehost/bin`` when it
exists. The network is private: the container has its own loopback, so tests in parallel do
not clash on ports, and the host cannot reach the container's ports (probe them with
``wait_port``/``http_get``, which run inside).

Commands run through ``nsenter`` into the container's namespaces (``run``); for a user they go
through ``runuser``, whose PAM stack opens no logind session: like a root shell on a real host,
a user command neither starts ``user@UID.service`` nor keeps it alive, so linger is what it is
(without linger ``systemctl --user`` fails with "Failed to connect to bus"). Such processes sit
outside the container's unit tree (systemd does not track them) but inside its PID namespace,
so they die with it.

Every container gets a cgroup of its own (``reconciler-e2e.<name>`` below this process's cgroup
in the cgroup2 and, on a hybrid host, the v1 ``name=systemd`` hierarchy): nspawn without
``--register`` builds the container's tree right below its caller's cgroup, and two containers
booted from one process would otherwise share ``payload/``.

Use the pytest fixtures ``container`` / ``make_container`` (conftest.py) rather than this class
directly: they tear down even when the test fails or is interrupted.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from . import images
from .images import REPO

ASSETS = Path(__file__).resolve().parent / "assets"
FAKEHOST_BIN = REPO / "tests" / "fakehost" / "bin"
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
USER = images.USER
UID = images.UID
#: where the real gateway's install directory is bound inside the container
GATEWAY_MOUNT = "/opt/clawdbot"
GATEWAY_ENTRY = f"{GATEWAY_MOUNT}/node_modules/clawdbot/dist/entry.js"
#: where images.ensure_npm_cache() is bound (read-only): npm/ and cache/
NPM_CACHE_MOUNT = images.NPM_CACHE_MOUNT


def workdir_base() -> Path:
    return Path(os.environ.get("RECONCILER_E2E_WORKDIR", "/var/tmp/reconciler-e2e"))


class ContainerError(RuntimeError):
    pass


class CommandFailed(subprocess.CalledProcessError):
    """A command in the container exited non-zero; str() shows its output."""

    def __str__(self) -> str:
        return (
            f"{shlex.join(self.cmd)} exited {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


# Every container that may have processes; killed at interpreter exit / SIGTERM as a last resort.
_LIVE: dict[int, Container] = {}
_LIVE_LOCK = threading.Lock()
_COUNTER = itertools.count(1)


def kill_all_live() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE.values())
    for c in live:
        with contextlib.suppress(Exception):
            c.kill()


atexit.register(kill_all_live)


def _proc_starttime(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return None
    # field 22 (starttime), counted after the ")" that ends the comm field
    return int(stat.rsplit(")", 1)[1].split()[19])


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except OSError:
        pass
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return kids


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        return []


def processes_mentioning(text: str) -> list[tuple[int, list[str]]]:
    """Host processes whose command line contains ``text`` (e.g. a rootfs path or machine name)."""
    me = os.getpid()
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != me:
            argv = _cmdline(int(d))
            if any(text in a for a in argv):
                found.append((int(d), argv))
    return found


def _kill_nsenter_group(p: subprocess.Popen[bytes]) -> None:
    """Kill a command started through nsenter (own process group): first everything inside
    the container, so nsenter reaps its child, then nsenter itself. Killing nsenter first
    would leave its child as a zombie that only the host's PID 1 may reap, and the container's
    shutdown then waits ~10 s for it."""
    inside = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != p.pid:
            with (
                contextlib.suppress(OSError, IndexError, ValueError),
                open(f"/proc/{d}/stat") as fh,
            ):
                if int(fh.read().rsplit(")", 1)[1].split()[2]) == p.pid:  # pgrp
                    inside.append(int(d))
    for pid in inside:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    try:
        p.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.communicate()


def cgroup_bases() -> list[Path]:
    """This process's cgroup directory in each hierarchy systemd-nspawn puts a container in
    (the cgroup2 one and, on a hybrid host, the v1 ``name=systemd`` one)."""
    own: dict[str, str] = {}
    with open("/proc/self/cgroup") as fh:
        for line in fh:
            hid, ctrls, path = line.rstrip("\n").split(":", 2)
            if hid == "0":
                own["cgroup2"] = path
            elif "name=systemd" in ctrls.split(","):
                own["name=systemd"] = path
    mounts: dict[str, tuple[str, str]] = {}
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            pre, post = line.split(" - ", 1)
            fields, (fstype, _src, opts) = pre.split(), post.split()[:3]
            if fstype == "cgroup2":
                key = "cgroup2"
            elif fstype == "cgroup" and "name=systemd" in opts.split(","):
                key = "name=systemd"
            else:
                continue
            mounts.setdefault(key, (fields[4], fields[3]))
    bases = []
    for key, path in own.items():
        if key in mounts:
            mnt, mroot = mounts[key]
            rel = os.path.relpath(path, mroot)
            base = Path(mnt) / rel if rel != "." else Path(mnt)
            if base.is_dir():
                bases.append(base)
    return bases


def _cgroup_procs(cg: Path) -> list[int]:
    pids: list[int] = []
    for dirpath, _dirs, _files in os.walk(cg):
        with contextlib.suppress(OSError), open(os.path.join(dirpath, "cgroup.procs")) as fh:
            pids += [int(x) for x in fh.read().split()]
    return pids


def remove_cgroup(cg: Path, timeout: float = 10) -> None:
    """SIGKILL every process left in cgroup ``cg`` (and below), then rmdir the tree."""
    if not cg.is_dir():
        return
    deadline = time.monotonic() + timeout
    while True:
        pids = _cgroup_procs(cg)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        dirs = [d for d, _, _ in os.walk(cg)]
        for d in sorted(dirs, key=len, reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(d)
        if not cg.exists():
            return
        if time.monotonic() > deadline:
            raise ContainerError(f"cannot remove cgroup {cg}: processes {_cgroup_procs(cg)}")
        time.sleep(0.05)


class Container:
    """One booted (or bootable) throwaway machine. See the module docstring."""

    def __init__(
        self,
        *,
        tarball: Path | None = None,
        name: str | None = None,
        hostname: str = images.IMAGE_HOSTNAME,
        binds: Sequence[str | tuple[str | Path, str]] = (),
        binds_ro: Sequence[str | tuple[str | Path, str]] = (),
        real_gateway: Path | bool = False,
        npm_cache: Path | None = None,
        fake_tailscale: bool = True,
        nspawn_args: Sequence[str] = (),
        repo: Path = REPO,
        network_namespace: str | None = None,
    ) -> None:
        self.tarball = Path(tarball) if tarball else images.ensure_rootfs()
        self.name = name or f"e2e-{os.getpid()}-{next(_COUNTER)}-{uuid.uuid4().hex[:4]}"
        if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9-]{0,62}", self.name):
            raise ValueError(f"bad machine name {self.name!r}")
        self.hostname = hostname
        self.binds = [self._bind(b) for b in binds]
        self.binds_ro = [self._bind(b) for b in binds_ro]
        self.real_gateway = (
            images.ensure_gateway() if real_gateway is True else (real_gateway or None)
        )
        if npm_cache and not self.real_gateway:
            raise ValueError("npm_cache needs real_gateway (its node runs npm)")
        self.npm_cache = npm_cache
        self.fake_tailscale_wanted = fake_tailscale
        self.fake_tailscale_installed = False
        self.nspawn_args = list(nspawn_args)
        self.repo = repo
        # None: a private loopback-only network; else a namespace the test made (network.py).
        self.network_namespace = network_namespace
        self.workdir: Path | None = None
        self.root: Path | None = None
        self.log_path: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid1: int | None = None
        self._pid1_start: int | None = None
        self.boots = 0
        self.timings: dict[str, float] = {}
        self.diagnostics_cache: str | None = None
        self.cgroups: list[Path] = []
        self.last_boot_state = ""

    @staticmethod
    def _bind(b: str | tuple[str | Path, str]) -> str:
        if isinstance(b, tuple):
            host, inside = b
            return f"{host}:{inside}"
        return b

    # ---------------------------------------------------------------- lifecycle

    @property
    def nspawn_pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def prepare(self) -> Container:
        """Untar a private copy of the cached rootfs and install the test assets into it."""
        if self.root is not None:
            return self
        base = workdir_base()
        base.mkdir(parents=True, exist_ok=True)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}.", dir=base))
        (self.workdir / "owner").write_text(f"{os.getpid()} {_proc_starttime(os.getpid())}\n")
        with _LIVE_LOCK:
            _LIVE[id(self)] = self
        self.root = self.workdir / "root"
        self.log_path = self.workdir / "nspawn.log"
        t0 = time.monotonic()
        images.extract_rootfs(self.tarball, self.root)
        self.timings["untar"] = time.monotonic() - t0
        self._install_assets()
        return self

    def _hostpath(self, path: str) -> Path:
        assert self.root is not None
        return self.root / path.lstrip("/")

    def _install_assets(self) -> None:
        root = self.root
        assert root is not None
        (root / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
        (root / "etc/hostname").write_text(self.hostname + "\n")
        (root / "etc/hosts").write_text(
            f"127.0.0.1\tlocalhost\n127.0.1.1\t{self.hostname}\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
        )
        bindir = root / "usr/local/bin"
        standin = bindir / "clawdbot-standin"
        shutil.copyfile(ASSETS / "clawdbot", standin)
        standin.chmod(0o755)
        clawdbot = bindir / "clawdbot"
        if self.real_gateway:
            # /opt/clawdbot is bound read-only from the host cache at boot.
            (root / GATEWAY_MOUNT.lstrip("/")).mkdir(parents=True, exist_ok=True)
            (bindir / "node").symlink_to(f"{GATEWAY_MOUNT}/node_modules/.bin/node")
            clawdbot.symlink_to(f"{GATEWAY_MOUNT}/node_modules/.bin/clawdbot")
        else:
            clawdbot.symlink_to("clawdbot-standin")
        if self.npm_cache:
            # images.ensure_npm_cache(): npm itself and its cache, bound read-only at boot; the
            # container has no registry, so installs go `--offline` through the user's .npmrc.
            (root / NPM_CACHE_MOUNT.lstrip("/")).mkdir(parents=True, exist_ok=True)
            npm = bindir / "npm"
            npm.write_text(
                f'#!/bin/sh\nexec /usr/local/bin/node {NPM_CACHE_MOUNT}/npm/bin/npm-cli.js "$@"\n'
            )
            npm.chmod(0o755)
        if self.fake_tailscale_wanted and (FAKEHOST_BIN / "tailscale").is_file():
            # Only `tailscale` is fake in a container (plus the helper modules it imports);
            # its state defaults to /var/lib/fakehost, which it creates itself (mode 0777).
            dest = root / "opt/fakehost/bin"
            dest.mkdir(parents=True, exist_ok=True)
            for f in [FAKEHOST_BIN / "tailscale", *sorted(FAKEHOST_BIN.glob("_*.py"))]:
                shutil.copyfile(f, dest / f.name)
            (dest / "tailscale").chmod(0o755)
            (bindir / "tailscale").symlink_to("/opt/fakehost/bin/tailscale")
            # Pre-create its state dir the way it would itself, plus the shared files world-
            # writable: otherwise, when root calls it first, `lock` and `calls.jsonl` end up
            # 0644 (umask) and every later call by the user fails with PermissionError.
            state = root / "var/lib/fakehost"
            state.mkdir(parents=True, exist_ok=True)
            # No sticky bit: the fake saves state.json/counters.json by renaming a temporary
            # file over them, which a sticky directory refuses when root wrote the previous
            # one (root via sudo, then the user: EPERM).
            state.chmod(0o777)
            for name in ("lock", "calls.jsonl"):
                (state / name).touch()
                (state / name).chmod(0o666)
            self.fake_tailscale_installed = True

    def nspawn_argv(self) -> list[str]:
        assert self.root is not None
        argv = [
            "systemd-nspawn",
            "-D",
            str(self.root),
            "-b",
            f"--machine={self.name}",
            "--register=no",
            "--keep-unit",
            "--console=passive",
            (
                f"--network-namespace-path=/run/netns/{self.network_namespace}"
                if self.network_namespace
                else "--private-network"
            ),
            f"--bind-ro={self.repo}:/src",
        ]
        if self.real_gateway:
            argv.append(f"--bind-ro={self.real_gateway}:{GATEWAY_MOUNT}")
        if self.npm_cache:
            # npm writes into its cache even to read it: each container gets a private upper
            # layer (in its workdir, deleted with it) over the shared cache, which stays as built
            assert self.workdir is not None
            upper = self.workdir / "npm-cache-upper"
            upper.mkdir(exist_ok=True)
            os.chown(upper, UID, UID)
            argv.append(f"--overlay={self.npm_cache}:{upper}:{NPM_CACHE_MOUNT}")
        argv += [f"--bind={b}" for b in self.binds]
        argv += [f"--bind-ro={b}" for b in self.binds_ro]
        return argv + self.nspawn_args

    def boot(self, timeout: float = 60) -> Container:
        """Start systemd-nspawn and wait until the system is running (or degraded)."""
        if self.running:
            raise ContainerError(f"{self.name} is already running")
        self.prepare()
        assert self.log_path is not None
        self.boots += 1
        t0 = time.monotonic()
        # Without --register (no machined here) nspawn builds the container's cgroup tree right
        # below its own cgroup: give every container a cgroup of its own, or two containers
        # booted from one process would share payload/ and see each other's units.
        self.cgroups = []
        for base in cgroup_bases():
            cg = base / f"reconciler-e2e.{self.name}"
            remove_cgroup(cg)
            cg.mkdir()
            self.cgroups.append(cg)
        enter = (
            'while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs"; shift; done; shift; exec "$@"'
        )
        argv = ["sh", "-c", enter, "sh", *map(str, self.cgroups), "--", *self.nspawn_argv()]
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== boot {self.boots}: {shlex.join(self.nspawn_argv())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid1 = None
        deadline = t0 + timeout
        while self.pid1 is None:
            if self.proc.poll() is not None:
                raise ContainerError(
                    f"systemd-nspawn exited {self.proc.returncode} during boot\n{self.log_tail()}"
                )
            for kid in _children(self.proc.pid):
                if _comm(kid) == "systemd":
                    self.pid1 = kid
                    self._pid1_start = _proc_starttime(kid)
            if time.monotonic() > deadline:
                raise ContainerError(f"no container PID 1 after {timeout}s\n{self.log_tail()}")
            if self.pid1 is None:
                time.sleep(0.05)
        state = self.wait_running(timeout=max(5.0, deadline - time.monotonic()))
        self.timings[f"boot{self.boots}"] = time.monotonic() - t0
        self.last_boot_state = state
        return self

    def wait_running(self, timeout: float = 60) -> str:
        """Poll ``systemctl is-system-running`` until it says running or degraded."""
        deadline = time.monotonic() + timeout
        state = ""
        while True:
            if not self.running:
                raise ContainerError(f"container stopped while booting\n{self.log_tail()}")
            with contextlib.suppress(subprocess.TimeoutExpired, ContainerError):
                r = self.run(["systemctl", "is-system-running"], check=False, timeout=10)
                state = r.stdout.strip()
                if state in ("running", "degraded"):
                    return state
            if time.monotonic() > deadline:
                raise ContainerError(
                    f"{self.name}: system state {state!r} after {timeout}s\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def poweroff(self, timeout: float = 30) -> None:
        """Clean ``systemctl poweroff``; wait for nspawn to exit; kill it if it doesn't in time."""
        if not self.running:
            self._reap()
            return
        assert self.proc is not None
        t0 = time.monotonic()
        with contextlib.suppress(Exception):
            self.run(["systemctl", "poweroff", "--no-block"], check=False, timeout=10)
        try:
            self.proc.wait(timeout=max(1.0, timeout - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            with open(self.log_path or os.devnull, "a") as log:
                log.write(f"\n===== poweroff did not finish in {timeout}s: killing\n")
            self.kill()
        self.timings[f"poweroff{self.boots}"] = time.monotonic() - t0
        self._reap()

    def reboot(self, timeout: float = 60) -> Container:
        """Power off cleanly, then boot the same rootfs directory again."""
        self.poweroff()
        return self.boot(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the container (its PID 1 takes the whole PID namespace along) and nspawn."""
        if self.pid1 and _proc_starttime(self.pid1) == self._pid1_start:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid1, signal.SIGKILL)
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._reap()

    def _reap(self) -> None:
        # nothing may survive: wait until the old PID 1 is really gone
        if self.pid1:
            deadline = time.monotonic() + 10
            while _proc_starttime(self.pid1) == self._pid1_start and time.monotonic() < deadline:
                time.sleep(0.05)
        self.pid1 = None
        self._pid1_start = None
        if self.proc is None or self.proc.poll() is not None:
            for cg in self.cgroups:
                remove_cgroup(cg)

    def destroy(self, poweroff_timeout: float = 20) -> None:
        """Power off (or kill), then delete the rootfs copy. Safe to call more than once."""
        try:
            if self.running:
                try:
                    self.poweroff(timeout=poweroff_timeout)
                finally:
                    self.kill()
            else:
                self.kill()
        finally:
            if self.workdir is not None and self.workdir.exists():
                for p in processes_mentioning(str(self.root)):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p[0], signal.SIGKILL)
                images._safe_rmtree(self.workdir)
            with _LIVE_LOCK:
                _LIVE.pop(id(self), None)

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # ---------------------------------------------------------------- commands

    def user_env(self, user: str) -> dict[str, str]:
        uid, home = self.user_info(user)
        return {
            "HOME": home,
            "USER": user,
            "LOGNAME": user,
            "XDG_RUNTIME_DIR": f"/run/user/{uid}",
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path=/run/user/{uid}/bus",
        }

    def user_info(self, user: str) -> tuple[int, str]:
        """(uid, home) from the container's /etc/passwd."""
        for line in self._hostpath("/etc/passwd").read_text().splitlines():
            f = line.split(":")
            if f[0] == user:
                return int(f[2]), f[5]
        raise KeyError(f"no user {user!r} in {self.name}")

    def command(
        self,
        argv: Sequence[str],
        user: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> list[str]:
        """The host argv that runs ``argv`` inside the running container."""
        if not self.pid1:
            raise ContainerError(f"{self.name} is not running")
        base = [f"PATH={ROOT_PATH}", "LANG=C.UTF-8"]
        extra = [f"{k}={v}" for k, v in (env or {}).items()]
        out = ["nsenter", "-t", str(self.pid1), "-a", "env", "-i", *base, "HOME=/root"]
        if user and user != "root":
            uenv = self.user_env(user)
            cwd = cwd or uenv["HOME"]
            out += [
                "runuser",
                "-u",
                user,
                "--",
                "env",
                "-i",
                "-C",
                cwd,
                *base,
                *(f"{k}={v}" for k, v in uenv.items()),
                *extra,
            ]
        else:
            out += ["env", *(["-C", cwd] if cwd else []), *extra]
        return out + list(argv)

    def run(
        self,
        argv: Sequence[str],
        user: str | None = None,
        check: bool = True,
        timeout: float = 60,
        input: str | bytes | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in the container as root (or as ``user``, with its systemd user bus).

        The environment is clean (``env -i``): PATH, HOME, LANG, plus for a user USER, LOGNAME,
        XDG_RUNTIME_DIR and DBUS_SESSION_BUS_ADDRESS, plus ``env``. stdout/stderr are returned
        as text. On timeout the whole process group is killed and TimeoutExpired raised.
        """
        full = self.command(argv, user=user, env=env, cwd=cwd)
        data = input.encode() if isinstance(input, str) else input
        p = subprocess.Popen(
            full,
            stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = p.communicate(data, timeout=timeout)
        except BaseException:
            _kill_nsenter_group(p)
            raise
        r = subprocess.CompletedProcess(
            list(argv), p.returncode, out.decode(errors="replace"), err.decode(errors="replace")
        )
        if check and r.returncode != 0:
            raise CommandFailed(r.returncode, list(argv), r.stdout, r.stderr)
        return r

    def sh(self, script: str, **kw: object) -> subprocess.CompletedProcess[str]:
        """Run a shell script (``sh -euc``), dedented; same keywords as run()."""
        return self.run(["sh", "-euc", textwrap.dedent(script)], **kw)  # type: ignore[arg-type]

    def systemctl_user(
        self, *args: str, user: str = USER, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return self.run(["systemctl", "--user", *args], user=user, check=check, timeout=timeout)

    def write_file(
        self, path: str, text: str | bytes, mode: int = 0o644, user: str | None = None
    ) -> None:
        """Write a file in the container (parents created), as root or as ``user``.

        When the container is not running, writes into the rootfs copy directly (root-owned
        unless ``user`` is given, then chowned to that user).
        """
        if self.running and self.pid1:
            self.run(
                [
                    "sh",
                    "-euc",
                    'mkdir -p "$(dirname "$1")"; cat > "$1"; chmod "$2" "$1"',
                    "sh",
                    path,
                    f"{mode:o}",
                ],
                user=user,
                input=text,
            )
            return
        self.prepare()
        hp = self._hostpath(path)
        hp.parent.mkdir(parents=True, exist_ok=True)
        hp.write_bytes(text.encode() if isinstance(text, str) else text)
        hp.chmod(mode)
        if user:
            uid, _ = self.user_info(user)
            os.chown(hp, uid, uid)

    def read_file(self, path: str, user: str | None = None) -> str:
        if self.running and self.pid1:
            return self.run(["cat", path], user=user).stdout
        return self._hostpath(path).read_text()

    def exists(self, path: str) -> bool:
        return self.run(["test", "-e", path], check=False).returncode == 0

    def wait_port(self, port: int, timeout: float = 30, host: str = "127.0.0.1") -> float:
        """Wait until something accepts TCP connections on host:port inside the container.

        Returns the seconds waited; raises TimeoutError."""
        script = textwrap.dedent(
            f"""
            import socket, sys, time
            t0 = time.monotonic()
            while True:
                try:
                    socket.create_connection(({host!r}, {int(port)}), timeout=1).close()
                    print(time.monotonic() - t0); sys.exit(0)
                except OSError as e:
                    err = e
                if time.monotonic() - t0 > {float(timeout)}:
                    print(err, file=sys.stderr); sys.exit(1)
                time.sleep(0.1)
            """
        )
        r = self.run(["python3", "-c", script], check=False, timeout=timeout + 15)
        if r.returncode != 0:
            raise TimeoutError(
                f"{self.name}: nothing listening on {host}:{port} after {timeout}s: "
                f"{r.stderr.strip()}"
            )
        return float(r.stdout.strip())

    def http_get(self, port: int, path: str = "/", timeout: float = 10) -> tuple[int, str]:
        """GET http://127.0.0.1:port/path inside the container: (status, body)."""
        script = textwrap.dedent(
            f"""
            import sys, urllib.error, urllib.request
            try:
                r = urllib.request.urlopen("http://127.0.0.1:{int(port)}{path}", timeout={timeout})
                status, body = r.status, r.read()
            except urllib.error.HTTPError as e:
                status, body = e.code, e.read()
            print(status); sys.stdout.flush(); sys.stdout.buffer.write(body)
            """
        )
        r = self.run(["python3", "-c", script], timeout=timeout + 15)
        status, _, body = r.stdout.partition("\n")
        return int(status), body

    def wait_unit(
        self, unit: str, state: str = "active", user: str | None = None, timeout: float = 30
    ) -> None:
        """Wait until ``systemctl [--user] is-active unit`` prints ``state``."""
        argv = ["systemctl", *(["--user"] if user else []), "is-active", unit]
        deadline = time.monotonic() + timeout
        got = ""
        while True:
            r = self.run(argv, user=user, check=False, timeout=15)
            got = r.stdout.strip()
            if got == state:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.name}: {unit} is {got!r}, not {state!r} after {timeout}s"
                )
            time.sleep(0.2)

    # ---------------------------------------------------------------- diagnostics

    def log_tail(self, lines: int = 80) -> str:
        try:
            text = self.log_path.read_text(errors="replace") if self.log_path else ""
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def journal(self, lines: int = 150, args: Sequence[str] = ()) -> str:
        """The container's journal tail (live through nsenter, else read from the rootfs)."""
        argv = ["journalctl", "--no-pager", "-o", "short-monotonic", "-n", str(lines), *args]
        if self.running and self.pid1:
            r = self.run(argv, check=False, timeout=20)
            return r.stdout + r.stderr
        if self.root and (self.root / "var/log/journal").exists() and shutil.which("journalctl"):
            r = subprocess.run(
                [*argv[:1], "-D", str(self.root / "var/log/journal"), *argv[1:]],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
            return r.stdout + r.stderr
        return "(no journal)"

    def diagnostics(self) -> str:
        """nspawn log + journal tail + failed units, for attaching to a failed test's report."""
        if self.diagnostics_cache is not None and not self.running:
            return self.diagnostics_cache
        parts = [
            f"machine {self.name}, rootfs {self.root}, boots {self.boots}, "
            f"running {self.running}, timings {self.timings}",
            "----- systemd-nspawn log (tail) -----",
            self.log_tail(),
        ]
        with contextlib.suppress(Exception):
            if self.running:
                parts += [
                    "----- systemctl --failed -----",
                    self.run(
                        ["systemctl", "--failed", "--no-pager"], check=False, timeout=15
                    ).stdout,
                ]
        with contextlib.suppress(Exception):
            parts += ["----- journalctl (tail) -----", self.journal()]
        self.diagnostics_cache = "\n".join(parts)
        return self.diagnostics_cache


@contextlib.contextmanager
def booted(**kw: object) -> Iterator[Container]:
    """``with booted(...) as c:`` -- a booted Container, destroyed on exit whatever happens."""
    c = Container(**kw)  # type: ignore[arg-type]
    try:
        c.boot()
        yield c
    finally:
        c.destroy()


def reap_stale() -> list[str]:
    """Kill containers and delete rootfs copies left by test processes that no longer exist
    (e.g. a pytest killed with SIGKILL). Returns what was cleaned."""
    base = workdir_base()
    cleaned: list[str] = []
    if not base.is_dir():
        return cleaned
    for d in base.iterdir():
        try:
            pid_s, start_s = (d / "owner").read_text().split()
            alive = _proc_starttime(int(pid_s)) == int(start_s)
        except (OSError, ValueError):
            # no owner file yet: maybe being created right now; only take old ones
            alive = time.time() - d.stat().st_mtime < 3600
        if alive:
            continue
        root = str(d / "root")
        for pid, argv in processes_mentioning(root):
            if argv and os.path.basename(argv[0]) == "systemd-nspawn":
                for kid in _children(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(kid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        for cgbase in cgroup_bases():
            remove_cgroup(cgbase / f"reconciler-e2e.{d.name.rsplit('.', 1)[0]}")
        images._safe_rmtree(d)
        cleaned.append(str(d))
    # cgroups of containers whose owner (the pid in the machine name) is gone
    for cgbase in cgroup_bases():
        for cg in cgbase.glob("reconciler-e2e.e2e-*"):
            m = re.match(r"reconciler-e2e\.e2e-(\d+)-", cg.name)
            if m and not os.path.exists(f"/proc/{m.group(1)}"):
                remove_cgroup(cg)
                cleaned.append(str(cg))
    return cleaned


# -------------------------------------------------------------------------------- gateway helpers


def destroy_all(containers: list[Container]) -> None:
    """Destroy every container at once (each poweroff waits for its own systemd, up to 20 s);
    every one is torn down even when another fails, then the first failure is raised."""
    errors: list[BaseException] = []

    def one(c: Container) -> None:
        try:
            c.destroy()
        except BaseException as e:  # keep tearing the others down
            errors.append(e)

    threads = [threading.Thread(target=one, args=(c,)) for c in containers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def output_of(proc: subprocess.Popen[str], timeout: float) -> str:
    """What `proc` printed until it ended. One that does not end within `timeout` is sent
    SIGABRT (started with PYTHONFAULTHANDLER=1, a Python program then prints every thread's
    stack) and the test fails with that, so a hang in CI says where it hung."""
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        try:
            output, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
        raise AssertionError(f"{proc.args} did not end within {timeout:g} s:\n{output}") from None
    return output or ""


def gateway_names(profile: str | None = None, home: str = f"/home/{USER}") -> dict[str, str]:
    """Unit name, state dir and config path of a clawdbot profile (docs/host-facts.md §1)."""
    suffix = "" if profile in (None, "default") else f"-{profile}"
    state = f"{home}/.clawdbot{suffix}"
    return {
        "unit": f"clawdbot-gateway{suffix}.service",
        "state_dir": state,
        "config": f"{state}/clawdbot.json",
    }


def gateway_config_json5(port: int) -> str:
    """The smallest config the real gateway starts with (docs/host-facts.md §1), as JSON5."""
    return textwrap.dedent(
        f"""\
        // written by the e2e harness; the gateway validates strictly: no keys of our own here
        {{
          gateway: {{
            mode: "local",
            port: {int(port)},
            bind: "loopback",
            tailscale: {{ mode: "off" }},
          }},
        }}
        """
    )


def gateway_unit(c: Container, port: int, profile: str | None = None, user: str = USER) -> str:
    """A user unit shaped like the one `clawdbot gateway install` writes (docs/host-facts.md §1),
    running the real gateway when the container has it, else the stand-in."""
    _, home = c.user_info(user)
    n = gateway_names(profile, home)
    if c.real_gateway:
        exec_start = f"/usr/local/bin/node {GATEWAY_ENTRY} gateway --port {int(port)}"
    else:
        exec_start = f"/usr/local/bin/clawdbot gateway --port {int(port)}"
    env = {
        "HOME": home,
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "CLAWDBOT_STATE_DIR": n["state_dir"],
        "CLAWDBOT_CONFIG_PATH": n["config"],
        "CLAWDBOT_GATEWAY_PORT": str(int(port)),
    }
    if profile not in (None, "default"):
        env["CLAWDBOT_PROFILE"] = str(profile)
    env_lines = "\n".join(f"Environment={k}={v}" for k, v in env.items())
    return (
        "[Unit]\n"
        f"Description=Clawdbot Gateway (e2e{', profile ' + profile if profile else ''})\n"
        "After=network-online.target\nWants=network-online.target\n\n"
        "[Service]\n"
        f"ExecStart={exec_start}\n"
        "Restart=always\nRestartSec=5\nKillMode=process\n"
        f"{env_lines}\n\n"
        "[Install]\nWantedBy=default.target\n"
    )


def install_gateway_service(
    c: Container,
    port: int = 18789,
    profile: str | None = None,
    user: str = USER,
    linger: bool = True,
    start: bool = True,
) -> str:
    """Write config + user unit for a gateway profile, enable linger, ``enable --now``.

    Does by hand what the reconciler will do; returns the unit name. Wait for it with
    ``c.wait_port(port, timeout=...)`` (the real gateway: 15-45 s on a cold start)."""
    uid, home = c.user_info(user)
    n = gateway_names(profile, home)
    c.run(["install", "-d", "-m", "700", "-o", user, "-g", user, n["state_dir"]])
    c.write_file(n["config"], gateway_config_json5(port), mode=0o600, user=user)
    c.write_file(
        f"{home}/.config/systemd/user/{n['unit']}", gateway_unit(c, port, profile, user), user=user
    )
    if linger:
        c.run(["loginctl", "enable-linger", user])
        c.wait_unit(f"user@{uid}.service", timeout=30)
    if start:
        c.systemctl_user("daemon-reload", user=user)
        c.systemctl_user("enable", "--now", n["unit"], user=user)
    return n["unit"]
