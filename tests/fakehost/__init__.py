"""A fake Clawdbot host for fast tests: fake executables on PATH, state in a temp directory.

    host = FakeHost(tmp_path)
    host.set_operator(None)
    subprocess.run(["tailscale", "serve", "--bg", "--yes", "18789"], env=host.env)
    assert host.mutating_calls()[-1]["argv"][:2] == ["tailscale", "serve"]

The executables live in tests/fakehost/bin (stdlib-only Python, see bin/_fakestate.py for the
state layout); FakeHost links them into `<dir>/bin` (so a tool can be "not installed") and puts
that first on PATH, followed by a shared directory holding the system's other commands (minus
the faked ones and the ones that would read the real machine: ss, journalctl, ...) and a
stdlib-only `python3` that starts fast.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

BIN_SRC = Path(__file__).resolve().parent / "bin"

# Every fake in BIN_SRC, as FakeHost links it into <dir>/bin ("openclaw" only with that product).
TOOLS = (
    "tailscale",
    "loginctl",
    "systemctl",
    "node",
    "npm",
    "clawdbot",
    "sudo",
    "runuser",
    "docker",
    "journalctl",
    "id",
    "usermod",
    "systemd-run",
)

# Not taken from the real system: faked, or answering about the real machine instead of the fake.
_SHADOWED = frozenset(
    {
        *TOOLS,
        "openclaw",
        "moltbot",
        "restic",
        "tailscaled",
        "nodejs",
        "npx",
        "corepack",
        "dockerd",
        "python",
        "python3",
        "ss",
        "netstat",
        "lsof",
        "fuser",
        "journalctl",
        "busctl",
        "systemd-run",
        "machinectl",
        "hostnamectl",
        "timedatectl",
        "su",
        "pkexec",
        "doas",
    }
)
_SYSTEM_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
_SYSBIN_VERSION = "3"


def _load_fakestate() -> ModuleType:
    name = "_fakehost_fakestate"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BIN_SRC / "_fakestate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


fs = _load_fakestate()


def system_bin() -> Path:
    """A shared directory: a stdlib-only `python3` (a venv of nothing, so it starts in ~10 ms)
    and links to the system's commands except the shadowed ones. Built once per machine state."""
    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    stamp = [base, _SYSBIN_VERSION]
    for d in _SYSTEM_DIRS:
        with contextlib.suppress(OSError):
            stamp.append(f"{d}:{os.stat(d).st_mtime_ns}")
    key = hashlib.sha256("|".join(stamp).encode()).hexdigest()[:12]
    final = Path(tempfile.gettempdir()) / f"fakehost-env-{os.getuid()}-{key}"
    if (final / "bin" / "python3").exists():
        return final / "bin"
    tmp = Path(tempfile.mkdtemp(prefix=final.name + ".tmp-", dir=final.parent))
    bindir = tmp / "bin"
    bindir.mkdir()
    version = ".".join(str(v) for v in sys.version_info[:3])
    (tmp / "pyvenv.cfg").write_text(
        f"home = {os.path.dirname(base)}\ninclude-system-site-packages = false\nversion = {version}\n"
    )
    for name in ("python3", "python", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
        (bindir / name).symlink_to(base)
    seen = {p.name for p in bindir.iterdir()}
    for d in _SYSTEM_DIRS:
        try:
            entries = sorted(os.listdir(d))
        except OSError:
            continue
        for entry in entries:
            if entry in seen or entry in _SHADOWED:
                continue
            path = os.path.join(d, entry)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                (bindir / entry).symlink_to(path)
                seen.add(entry)
    try:
        os.rename(tmp, final)
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return final / "bin"


def gateway_unit_text(
    home: str | Path,
    *,
    profile: str | None = None,
    port: int = 18789,
    product: str = "clawdbot",
    node: str = "/usr/bin/node",
    prefix: str | Path | None = None,
    token: str | None = "3f9c2a7e5b1d4c8f0a6e2b9d7c5f1a3e",
    version: str = "2026.1.24-3",
) -> str:
    """A gateway unit as `clawdbot gateway install` renders it (docs/host-facts.md §1)."""
    home = str(home)
    prefix = str(prefix or f"{home}/.npm-global/lib/node_modules")
    env = product.upper()
    dot = f".{product}" + (f"-{profile}" if profile and profile != "default" else "")
    state = f"{home}/{dot}"
    lines = [
        "[Unit]",
        f"Description={product.capitalize()} Gateway"
        + (f" (profile: {profile}, v{version})" if profile else f" (v{version})"),
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        f'ExecStart="{node}" "{prefix}/{product}/dist/entry.js" gateway --port {port}',
        "Restart=always",
        "RestartSec=5",
        "KillMode=process",
        f"Environment=HOME={home}",
        f'Environment="PATH={home}/.npm-global/bin:/usr/local/bin:/usr/bin:/bin"',
    ]
    if profile:
        lines.append(f"Environment={env}_PROFILE={profile}")
    lines += [
        f"Environment={env}_STATE_DIR={state}",
        f"Environment={env}_CONFIG_PATH={state}/{product}.json",
        f"Environment={env}_GATEWAY_PORT={port}",
    ]
    if token:
        lines.append(f"Environment={env}_GATEWAY_TOKEN={token}")
    lines += ["", "[Install]", "WantedBy=default.target", ""]
    return "\n".join(lines)


class FakeHost:
    """State directory, fake root and PATH for the fake tools. See the module docstring."""

    def __init__(
        self,
        tmp_path: str | Path,
        *,
        user: str = "user",
        uid: int = 1000,
        hostname: str = "vm102",
        caller: str | None = None,
    ) -> None:
        self.dir = Path(tmp_path)
        self.root = self.dir / "root"
        self.bin_dir = self.dir / "bin"
        self.state_file = self.dir / "state.json"
        self.calls_file = self.dir / "calls.jsonl"
        self.user = user
        self.uid = uid
        self.hostname = hostname
        self.home = self.root / "home" / user
        self.linger_dir = self.root / "var/lib/systemd/linger"
        self.proc_root = self.root / "proc"
        # Exists on a host booted with systemd (sd_booted); the planner checks it.
        self.systemd_dir = self.root / "run/systemd/system"
        self.unit_dir = self.home / ".config/systemd/user"
        self._servers: list[subprocess.Popen[bytes]] = []

        if not self.state_file.exists():
            self._create(caller)
        self.sysbin = system_bin()
        self.env: dict[str, str] = self._environment()

    @classmethod
    def attach(cls, directory: str | Path, **kw: Any) -> FakeHost:
        """The fake host already living in `directory` (another process made it), unchanged."""
        if not (Path(directory) / "state.json").exists():
            raise FileNotFoundError(f"no fake host in {directory}")
        return cls(directory, **kw)

    def _create(self, caller: str | None) -> None:
        user, uid, hostname = self.user, self.uid, self.hostname
        for d in (
            self.linger_dir,
            self.home,
            self.proc_root,
            self.bin_dir,
            self.root / "tmp",
            self.systemd_dir,
        ):
            d.mkdir(parents=True, exist_ok=True)
        state = fs.default_state(root=str(self.root), hostname=hostname)
        state["user"].update(name=user, uid=uid, gid=uid, home=str(self.home), groups=[user])
        state["caller"] = caller or user
        state["bin_dir"] = str(self.bin_dir)
        self.state_file.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
        self.calls_file.touch()
        for tool in TOOLS:
            self._link(tool, True)
        with self._edit() as h:
            fs.write_proc(h)

    def _environment(self) -> dict[str, str]:
        user = self.user
        env = {
            k: v
            for k, v in os.environ.items()
            if k
            not in (
                "FAKEHOST_CALLER",
                "FAKEHOST_STATE",
                "PYTHONHOME",
                "XDG_RUNTIME_DIR",
                "DBUS_SESSION_BUS_ADDRESS",
                "SUDO_USER",
                "PYTHONDONTWRITEBYTECODE",
            )
        }
        env.update(
            PATH=f"{self.bin_dir}:{self.sysbin}",
            # byte-compiled _fakestate saves ~6 ms a call; the cache stays out of the tree
            PYTHONPYCACHEPREFIX=str(self.sysbin.parent / "pycache"),
            FAKEHOST_STATE=str(self.dir),
            HOME=str(self.home),
            USER=user,
            LOGNAME=user,
        )
        return env

    # ------------------------------------------------------------------ internals
    def _link(self, tool: str, present: bool) -> None:
        link = self.bin_dir / tool
        target = BIN_SRC / ("clawdbot" if tool == "openclaw" else tool)
        if present and not os.path.lexists(link):
            link.symlink_to(target)
        elif not present and os.path.lexists(link):
            link.unlink()

    @contextlib.contextmanager
    def _edit(self) -> Iterator[Any]:
        """The state, locked like the tools lock it; saved on exit."""
        h = fs.Host(str(self.dir))
        h.lock()
        try:
            h.load()
            yield h
            h.mark()
            h.save()
        finally:
            h.unlock()

    @property
    def path(self) -> str:
        return self.env["PATH"]

    # ------------------------------------------------------------------ running tools
    def run(
        self,
        *argv: str,
        caller: str | None = None,
        input: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 20,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command with this host's environment (as `caller` when given)."""
        e = dict(self.env)
        if caller:
            e["FAKEHOST_CALLER"] = caller
        if env:
            e.update(env)
        return subprocess.run(
            list(argv), env=e, input=input, capture_output=True, text=True, timeout=timeout
        )

    # ------------------------------------------------------------------ state access
    def state(self) -> dict[str, Any]:
        """A copy of state.json."""
        return json.loads(self.state_file.read_text())

    def set_caller(self, caller: str) -> None:
        """Who runs the tools when FAKEHOST_CALLER is not set: "user" (the default) or "root"."""
        with self._edit() as h:
            h.data["caller"] = caller

    def allow_sudo(
        self, rule: bool | Sequence[Sequence[str]], *, as_user: str | None = None
    ) -> None:
        """`sudo -n` runs everything (True), nothing (False) or commands starting with one of the
        given argv prefixes (argv[0] compared by basename), e.g. [["loginctl", "enable-linger"]].
        With `as_user`: the rule for `sudo -n -u AS_USER` only (else the same rule applies)."""
        value = rule if isinstance(rule, bool) else [list(p) for p in rule]
        with self._edit() as h:
            if as_user is None:
                h.data["sudo"]["allow"] = value
            else:
                h.data["sudo"].setdefault("as", {})[as_user] = value

    # ------------------------------------------------------------------ tailscale
    def set_tailscale(
        self,
        *,
        installed: bool | None = None,
        daemon: bool | None = None,
        backend_state: str | None = None,
        https: bool | None = None,
        funnel: bool | None = None,
        hostname: str | None = None,
        tailnet: str | None = None,
        version: str | None = None,
        auth_url: str | None = None,
        empty_style: str | None = None,
    ) -> None:
        """Change only what is given. backend_state: NoState, NeedsLogin, NeedsMachineAuth,
        Stopped, Starting, Running. empty_style: "braces" (`{}`) or "null" (older versions)."""
        if installed is not None:
            self._link("tailscale", installed)
        changes = {
            "daemon": daemon,
            "backend_state": backend_state,
            "https": https,
            "funnel": funnel,
            "hostname": hostname,
            "tailnet": tailnet,
            "version": version,
            "auth_url": auth_url,
            "empty_style": empty_style,
        }
        with self._edit() as h:
            h.data["tailscale"].update({k: v for k, v in changes.items() if v is not None})

    @property
    def dns_name(self) -> str:
        """Self.DNSName without its trailing dot (the host part of serve Web keys)."""
        return fs.ts_dns_name(self.state()).rstrip(".")

    def set_operator(self, user: str | None) -> None:
        with self._edit() as h:
            h.data["tailscale"]["operator"] = user

    def set_serve_config(self, config: dict[str, Any] | None) -> None:
        """The ServeConfig (docs/host-facts.md §2 shape). None: empty, and printed as `null` like
        older versions; {}: empty, printed as `{}`."""
        with self._edit() as h:
            ts = h.data["tailscale"]
            ts["serve_config"] = copy.deepcopy(config) if config else {}
            ts["empty_style"] = "null" if config is None else "braces"

    def serve_config(self) -> dict[str, Any]:
        return copy.deepcopy(self.state()["tailscale"].get("serve_config") or {})

    # ------------------------------------------------------------------ logind
    def set_linger(self, user: str, enabled: bool) -> None:
        """Create/remove root/var/lib/systemd/linger/USER. For the spec's user this starts/stops
        the user manager (and its default.target units) when that changes, like logind."""
        with self._edit() as h:
            was = fs.manager_up(h)
            path = self.linger_dir / user
            if enabled:
                path.touch()
            elif path.exists():
                path.unlink()
            self._manager_transition(h, was)

    def set_session(self, active: bool) -> None:
        """Whether the user has a login session (logind knows them; their manager runs). Ending
        the last session without linger stops the manager and every unit in it."""
        with self._edit() as h:
            was = fs.manager_up(h)
            h.data["user"]["session"] = active
            self._manager_transition(h, was)

    def _manager_transition(self, h: Any, was_up: bool) -> None:
        sd = fs.Systemd(h)
        now_up = fs.manager_up(h)
        if now_up and not was_up:
            sd.start_default_target()
        elif was_up and not now_up:
            sd.stop_all()

    def linger(self, user: str | None = None) -> bool:
        return (self.linger_dir / (user or self.user)).exists()

    # ------------------------------------------------------------------ systemd
    def unit_path(self, name: str) -> Path:
        return self.unit_dir / name

    def add_unit_file(self, name: str, text: str) -> Path:
        """Write a unit file (not loaded until a daemon-reload, like on a real host)."""
        self.unit_dir.mkdir(parents=True, exist_ok=True)
        path = self.unit_dir / name
        path.write_text(text)
        return path

    def remove_unit_file(self, name: str) -> None:
        (self.unit_dir / name).unlink(missing_ok=True)

    def gateway_unit_text(self, **kw: Any) -> str:
        """gateway_unit_text() for this host's home (profile=, port=, product=, token=, ...)."""
        kw.setdefault("node", str(self.bin_dir / "node"))
        return gateway_unit_text(self.home, **kw)

    def install_gateway_unit(
        self,
        profile: str | None = None,
        *,
        port: int = 18789,
        product: str = "clawdbot",
        name: str | None = None,
        enable: bool = True,
        start: bool = True,
        **kw: Any,
    ) -> str:
        """What `clawdbot gateway install` leaves behind: unit file, daemon-reload, enable,
        start. Returns the unit name. Not logged as calls (it is set-up)."""
        unit = name or (
            f"{product}-gateway-{profile}.service"
            if profile and profile != "default"
            else f"{product}-gateway.service"
        )
        self.add_unit_file(
            unit, self.gateway_unit_text(profile=profile, port=port, product=product, **kw)
        )
        with self._edit() as h:
            sd = fs.Systemd(h)
            sd.daemon_reload()
            if enable:
                wants = self.unit_dir / "default.target.wants"
                wants.mkdir(parents=True, exist_ok=True)
                link = wants / unit
                if not os.path.lexists(link):
                    link.symlink_to(self.unit_dir / unit)
            if start and fs.manager_up(h):
                sd.start(unit)
        return unit

    def daemon_reload(self) -> None:
        with self._edit() as h:
            fs.Systemd(h).daemon_reload()

    def set_unit_state(self, name: str, state: str) -> None:
        """Force a unit's runtime state: "active" (started, listening on its port), "inactive"
        (stopped by someone), "failed" (main process died)."""
        with self._edit() as h:
            sd = fs.Systemd(h)
            if state == "active":
                if sd.loaded(name) is None:
                    sd.daemon_reload()
                sd.start(name)
            elif state == "inactive":
                sd.stop(name)
            elif state == "failed":
                sd.stop(name, result="exit-code", failed=True)
            else:
                raise ValueError(f"unknown unit state {state!r}")

    def crash_loop(self, name: str, *, exit_status: int = 1, restarts: int = 5) -> None:
        """The unit's main process keeps exiting with `exit_status`: systemd restarts it
        (`activating`/`auto-restart`, NRestarts counting, Result=exit-code), nothing listens."""
        self.set_unit_state(name, "failed")
        with self._edit() as h:
            rt = h.data["systemd"]["units"][name]
            rt.update(
                active="activating",
                sub="auto-restart",
                n_restarts=restarts,
                result="exit-code",
                exec_main_code=1,
                exec_main_status=exit_status,
            )

    def set_start_behaviour(
        self,
        match: str,
        mode: str,
        *,
        exit_status: int = 1,
        after_s: float = 1.0,
        after_checks: int | None = None,
        journal: Sequence[str] = (),
        unit: str | None = None,
    ) -> None:
        """How a gateway whose unit's ExecStart line contains `match` (and, with `unit`, only
        when that unit starts it: e.g. a warm-up's transient unit) behaves when systemd
        starts it: "fail" (its process exits at once with `exit_status`, systemd restarts it:
        activating/auto-restart, NRestarts counting; nothing listens), "crash_after" (healthy,
        then exits `after_s` later, or right after answering `after_checks` health checks, and
        keeps crashing), "unhealthy" (listens, HTTP answers,
        `gateway health` fails with 1011), "slow" (a cold start: `gateway health` fails with
        1006 until `after_s` after the start, then answers). `journal`: the lines it writes when it dies.
        Rules are tried in the order they were set; "healthy" removes the rule for `match`."""
        if mode not in ("fail", "crash_after", "unhealthy", "slow", "healthy"):
            raise ValueError(f"unknown start behaviour {mode!r}")
        with self._edit() as h:
            rules = [r for r in h.data.get("start_behaviour") or [] if r["match"] != match]
            if mode != "healthy":
                rules.append(
                    {
                        "match": match,
                        "mode": mode,
                        "exit_status": exit_status,
                        "after_s": after_s,
                        "after_checks": after_checks,
                        "journal": list(journal),
                        **({"unit": unit} if unit else {}),
                    }
                )
            h.data["start_behaviour"] = rules

    def journal_lines(self, unit: str) -> list[str]:
        """What the unit wrote to the user's journal (messages only)."""
        return [m for _, m in (self.state().get("systemd") or {}).get("journal", {}).get(unit, [])]

    def add_pairing_request(
        self,
        profile: str,
        request_id: str,
        *,
        device_id: str,
        age_s: float = 30,
        display_name: str | None = None,
        platform: str = "MacIntel",
        client_id: str = "clawdbot-control-ui",
        client_mode: str = "webchat",
        role: str = "operator",
        remote_ip: str = "100.101.1.2",
        state_dir: Path | None = None,
    ) -> None:
        """A browser asked `profile`'s gateway to pair (what the gateway writes to
        <state>/devices/pending.json: src/infra/device-pairing.ts requestDevicePairing)."""
        directory = (state_dir or self.home / f".clawdbot-{profile}") / "devices"
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / "pending.json"
        pending = json.loads(path.read_text()) if path.exists() else {}
        entry: dict[str, Any] = {
            "requestId": request_id,
            "deviceId": device_id,
            "publicKey": "MCowBQYDK2VwAyEA" + device_id[:24],
            "platform": platform,
            "clientId": client_id,
            "clientMode": client_mode,
            "role": role,
            "roles": [role],
            "scopes": ["operator.admin"],
            "remoteIp": remote_ip,
            "silent": False,
            "isRepair": False,
            "ts": int((time.time() - age_s) * 1000),
        }
        if display_name is not None:
            entry["displayName"] = display_name
        pending[request_id] = entry
        path.write_text(json.dumps(pending, indent=2))
        os.chmod(path, 0o600)

    def close_listener(self, port: int) -> None:
        """The process listening on `port` stops listening but keeps running (a hung gateway)."""
        with self._edit() as h:
            h.data["listeners"] = [e for e in h.data["listeners"] if int(e["port"]) != port]
            fs.write_proc(h)

    def add_journal(self, unit: str, *lines: str) -> None:
        """Append lines to `unit`'s user journal (what `journalctl --user -u UNIT` prints)."""
        with self._edit() as h:
            journal = h.data["systemd"].setdefault("journal", {})
            now = time.time()
            journal.setdefault(unit, []).extend([now, line] for line in lines)

    def stop_unit(self, name: str) -> None:
        """Someone stopped the unit behind our back."""
        self.set_unit_state(name, "inactive")

    def unit_runtime(self, name: str) -> dict[str, Any]:
        """Runtime record of a unit: active, sub, main_pid, result, n_restarts, timestamps."""
        return dict(self.state()["systemd"]["units"].get(name, {}))

    def loaded_units(self) -> list[str]:
        return sorted(self.state()["systemd"]["loaded"])

    def enabled_links(self) -> list[str]:
        """Paths (relative to the unit dir) of the symlinks in *.wants/ and *.requires/."""
        if not self.unit_dir.exists():
            return []
        return sorted(
            str(p.relative_to(self.unit_dir))
            for p in self.unit_dir.glob("*.*/*")
            if p.is_symlink() and p.parent.name.endswith((".wants", ".requires"))
        )

    def reboot(self) -> None:
        """Power cycle: every process gone, no login session; with linger the user manager
        starts and brings up the units enabled for default.target."""
        with self._edit() as h:
            st = h.data
            sd = fs.Systemd(h)
            for name in list(sd.sd["units"]):
                sd.sd["units"][name] = {}
            st["processes"] = {}
            st["listeners"] = []
            st["user"]["session"] = False
            st["boot_time"] = fs.now()
            fs.write_proc(h)
            sd.daemon_reload()
            if fs.manager_up(h):
                sd.start_default_target()

    # ------------------------------------------------------------------ processes, ports
    def add_stray_listener(
        self,
        port: int,
        cmdline: Sequence[str] | None = None,
        *,
        uid: int | None = None,
        addr: str = "127.0.0.1",
    ) -> int:
        """A process not owned by any unit listening on `port` (shows up in root/proc).
        Returns its fake pid."""
        with self._edit() as h:
            argv = list(cmdline or ["python3", "-m", "http.server", str(port)])
            pid = fs.spawn_process(h.data, argv, {}, self.uid if uid is None else uid, unit=None)
            fs.add_listener(h.data, port, pid, unit=None, addr=addr)
            fs.write_proc(h)
            return int(pid)

    def kill(self, pid: int) -> None:
        """A process exits (a stray listener, or a unit's main process: then the unit fails)."""
        with self._edit() as h:
            sd = fs.Systemd(h)
            owner = h.data.get("processes", {}).get(str(pid), {}).get("unit")
            if owner:
                sd.stop(owner, result="signal", failed=True)
            else:
                freed = fs.remove_process(h.data, pid)
                fs.write_proc(h)
                for port in freed:
                    sd.retry_waiting(port)

    def listeners(self) -> list[dict[str, Any]]:
        """[{port, pid, unit (None for a stray), addr, inode, uid}]"""
        return [dict(x) for x in self.state().get("listeners", [])]

    def processes(self) -> dict[int, dict[str, Any]]:
        return {int(k): v for k, v in self.state().get("processes", {}).items()}

    # ------------------------------------------------------------------ node, gateway, npm
    def set_node(self, version: str | None) -> None:
        """`v22.12.0`, or None: not installed (no `node` on PATH)."""
        self._link("node", version is not None)
        with self._edit() as h:
            h.data["node"]["version"] = version

    def set_gateway(self, version: str | None, product: str = "clawdbot") -> None:
        """Installed gateway version of `product` (clawdbot/openclaw), None: not installed."""
        self._link(product, version is not None)
        with self._edit() as h:
            h.data["gateway"][product] = version

    def set_restic(self, installed: bool) -> None:
        """The fake restic 0.14.0 on PATH (bin/restic), or not installed (the default)."""
        self._link("restic", installed)

    def set_npm_prefix(self, prefix: str | Path | None) -> None:
        """`npm prefix -g` (default ~/.npm-global; outside the home, installs need root)."""
        with self._edit() as h:
            h.data["npm"]["prefix"] = str(prefix) if prefix else None

    def set_npm_registry(self, registry: dict[str, dict[str, str]] | None) -> None:
        """What `npm install --prefix` can fetch: package -> version -> "ok" | "broken" |
        "needs:<pkg>" (None: the default, bin/npm REGISTRY, with the real clawdbot releases)."""
        with self._edit() as h:
            h.data["npm"]["registry"] = registry

    def set_npm_cache(self, entries: list[str] | None) -> None:
        """`pkg@version` entries an `--offline` install finds in the cache (others: ENOTCACHED)."""
        with self._edit() as h:
            h.data["npm"]["cache"] = entries

    def hang_npm_install(self, hang: bool = True) -> None:
        """`npm install --prefix` starts writing node_modules, then hangs (a stuck registry)."""
        with self._edit() as h:
            h.data["npm"]["hang_install"] = hang

    def start_gateway_server(self, port: int, product: str = "clawdbot") -> subprocess.Popen[bytes]:
        """Run the fake gateway for real (HTTP on 127.0.0.1:port) until close() or kill."""
        proc = subprocess.Popen(
            [product, "gateway", "--port", str(port)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if b"listening" not in line:
            proc.kill()
            raise RuntimeError(f"fake gateway did not start: {line!r} {proc.stderr.read()!r}")  # type: ignore[union-attr]
        self._servers.append(proc)
        return proc

    # ------------------------------------------------------------------ docker
    def set_docker(
        self,
        *,
        installed: bool | None = None,
        daemon: bool | None = None,
        in_group: bool | None = None,
        version: str | None = None,
        rootless: bool | None = None,
    ) -> None:
        """Docker installed, its system daemon up, the user in the docker group, the version,
        the user's rootless daemon up (None: unchanged)."""
        if installed is not None:
            self._link("docker", installed)
        changes = {"daemon": daemon, "in_group": in_group, "version": version, "rootless": rootless}
        with self._edit() as h:
            h.data["docker"].update({k: v for k, v in changes.items() if v is not None})

    # ------------------------------------------------------------------ faults, calls, snapshots
    def fail_mutating_call(self, n: int = 1) -> None:
        """The n-th mutating call from now on (across all fake tools; n=1: the next one) fails
        with a realistic error and exit 1, changing nothing."""
        if n < 1:
            raise ValueError("n must be >= 1")
        with self._edit() as h:
            counters = h.read_counters()
            counters.setdefault("fail_at", []).append(int(counters.get("mutating", 0)) + n)
            h.write_counters(counters)

    def mutation_count(self) -> int:
        """Mutating calls made so far (all tools, including failed and injected-failure ones)."""
        return int(fs.Host(str(self.dir)).read_counters().get("mutating", 0))

    def calls(self) -> list[dict[str, Any]]:
        """Every invocation so far: {tool, argv, caller, mutating, exit, t}. A wrapper's line
        (sudo, runuser) comes after the line of the command it ran."""
        text = self.calls_file.read_text() if self.calls_file.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def mutating_calls(self) -> list[dict[str, Any]]:
        return [c for c in self.calls() if c["mutating"]]

    def clear_calls(self) -> None:
        self.calls_file.write_text("")

    def snapshot(self) -> dict[str, bytes]:
        """Every file, directory and symlink under root/, plus state.json, as bytes (the calls
        log, counters, lock and bin/ excluded): compare two snapshots for "byte-identical"."""
        snap: dict[str, bytes] = {"state.json": self.state_file.read_bytes()}
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel = os.path.relpath(dirpath, self.dir)
            for d in list(dirnames):
                p = os.path.join(dirpath, d)
                if os.path.islink(p):
                    snap[os.path.join(rel, d)] = b"-> " + os.readlink(p).encode()
                    dirnames.remove(d)
                else:
                    snap[os.path.join(rel, d) + "/"] = b"<dir>"
            for f in filenames:
                p = os.path.join(dirpath, f)
                if os.path.islink(p):
                    snap[os.path.join(rel, f)] = b"-> " + os.readlink(p).encode()
                else:
                    with open(p, "rb") as fh:
                        snap[os.path.join(rel, f)] = fh.read()
        return snap

    def close(self) -> None:
        """Stop fake gateway servers started by start_gateway_server()."""
        for proc in self._servers:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
            for stream in (proc.stdout, proc.stderr):
                if stream:
                    stream.close()
        self._servers.clear()

    def __enter__(self) -> FakeHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["TOOLS", "FakeHost", "gateway_unit_text", "system_bin"]
