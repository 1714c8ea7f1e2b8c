"""Shared state of the fake host tools (stdlib only; every fake in this directory imports it).

State lives in a directory: ``$FAKEHOST_STATE`` or, when unset (a systemd-nspawn container where
only ``tailscale`` is fake), ``/var/lib/fakehost``, created with default contents on first use.

Files in the state directory:
  state.json     the host's state (see ``default_state``); rewritten only by mutating calls
  counters.json  mutating-call counter and pending fault injections (not part of a snapshot)
  calls.jsonl    one JSON line per invocation of any fake tool
  lock           flock()ed for every read-modify-write
  root/          the fake filesystem root (linger files, the user's home, /proc)
  bin/           the fakes as they appear on PATH (FakeHost adds/removes entries)

Imports are kept to what every call needs (fcntl, os, sys, time, and `_json`, the C half of the
json package); the rest is imported lazily so one invocation stays in the tens of
milliseconds (tests/test_fakehost.py::test_invocations_import_only_what_every_call_needs). The
json package itself is imported only by the commands that print JSON: its import (`re` and the
compiling of its patterns) cost as much as the interpreter's own start, on every call.
"""

from __future__ import annotations

import _json
import fcntl
import os
import sys
import time

DEFAULT_STATE_DIR = "/var/lib/fakehost"
SCRIPT_DIR = os.path.dirname(os.path.realpath(__file__))


class Exit(Exception):
    """Raised by a tool to end the invocation with an exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def err(text: str = "") -> None:
    sys.stderr.write(text + "\n")


def fail(text: str, code: int = 1) -> Exit:
    """Print `text` to stderr and return an Exit to raise."""
    if text:
        err(text)
    return Exit(code)


def now() -> float:
    return time.time()


# --------------------------------------------------------------------------------------------
# JSON without the json package: the same C scanner json.loads uses, and the text json.dumps
# writes (tests/test_fakehost.py compares both with the json package's)


class _DecoderSettings:
    """The attributes json.JSONDecoder hands the C scanner (json.loads's defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    # a builtin method: not bound to the instance
    parse_constant = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": -float("inf")}.get


_scan = _json.make_scanner(_DecoderSettings())
_WS = " \t\n\r"


def loads(text: str):
    """json.loads(text) for a str, by the same C scanner."""
    start = len(text) - len(text.lstrip(_WS))
    try:
        obj, end = _scan(text, start)
    except StopIteration:
        raise ValueError(f"Expecting value: char {start}") from None
    if text[end:].strip(_WS):
        raise ValueError(f"Extra data: char {end}")
    return obj


def _float(f: float) -> str:
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "Infinity" if f > 0 else "-Infinity"
    return float.__repr__(f)


def _key(k) -> str:
    if isinstance(k, str):
        return k
    if k is True or k is False or k is None:
        return {True: "true", False: "false", None: "null"}[k]
    if isinstance(k, float):
        return _float(k)
    if isinstance(k, int):
        return int.__repr__(k)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(k).__name__}")


def dumps(obj, indent: int | str | None = None, sort_keys: bool = False, ensure_ascii=True) -> str:
    """json.dumps(obj, indent=..., sort_keys=..., ensure_ascii=...), byte for byte."""
    out: list[str] = []
    unit = " " * indent if isinstance(indent, int) else indent
    enc = _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring
    _encode(obj, unit, sort_keys, enc, 0, out)
    return "".join(out)


def _encode(o, unit: str | None, sort_keys: bool, enc, level: int, out: list[str]) -> None:
    if isinstance(o, str):
        out.append(enc(o))
    elif o is None:
        out.append("null")
    elif o is True:
        out.append("true")
    elif o is False:
        out.append("false")
    elif isinstance(o, int):
        out.append(int.__repr__(o))
    elif isinstance(o, float):
        out.append(_float(o))
    elif isinstance(o, (list, tuple, dict)):
        if not o:
            out.append("{}" if isinstance(o, dict) else "[]")
            return
        if unit is None:
            inner, sep, close = "", ", ", ""
        else:
            inner = "\n" + unit * (level + 1)
            sep, close = "," + inner, "\n" + unit * level
        out.append(("{" if isinstance(o, dict) else "[") + inner)
        if isinstance(o, dict):
            items = sorted(o.items()) if sort_keys else o.items()
            for i, (k, v) in enumerate(items):
                if i:
                    out.append(sep)
                out.append(enc(_key(k)) + ": ")
                _encode(v, unit, sort_keys, enc, level + 1, out)
        else:
            for i, v in enumerate(o):
                if i:
                    out.append(sep)
                _encode(v, unit, sort_keys, enc, level + 1, out)
        out.append(close + ("}" if isinstance(o, dict) else "]"))
    else:
        raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


# --------------------------------------------------------------------------------------------
# default state


def _hostname() -> str:
    name = os.uname().nodename.split(".")[0].lower() or "localhost"
    return "".join(c if (c.isalnum() or c == "-") else "-" for c in name)


def default_state(root: str = "/", hostname: str | None = None) -> dict:
    """The state a fresh host starts with (also what the container case creates on first use)."""
    host = hostname or _hostname()
    boot = now() - 3600.0
    return {
        "version": 1,
        "root": root,
        "hostname": host,
        "boot_time": boot,
        "user": {
            "name": "user",
            "uid": 1000,
            "gid": 1000,
            "home": os.path.join(root, "home/user"),
            "groups": ["user"],
            "session": True,
        },
        "tailscale": {
            "version": "1.102.1",
            "daemon": True,
            "backend_state": "Running",
            "hostname": host,
            "tailnet": "tail1234.ts.net",
            "https": True,
            "funnel": True,
            "operator": None,
            "serve_config": {},
            "empty_style": "braces",
            "auth_url": "",
            "ip4": "100.101.102.103",
            "ip6": "fd7a:115c:a1e0::9f01:6667",
        },
        "systemd": {"loaded": {}, "units": {}},
        "processes": {},
        "listeners": [],
        "next_pid": 4100,
        "next_inode": 52100,
        "node": {"version": "v22.12.0"},
        "gateway": {"clawdbot": "2026.1.24-3", "openclaw": None},
        "npm": {"version": "10.9.2", "prefix": None},
        "sudo": {"allow": True},
        "docker": {"daemon": True, "in_group": True, "version": "27.3.1"},
    }


def _fill_defaults(data: dict, defaults: dict) -> None:
    for key, value in defaults.items():
        if key not in data:
            data[key] = value
        elif isinstance(value, dict) and isinstance(data[key], dict) and key != "serve_config":
            _fill_defaults(data[key], value)


# --------------------------------------------------------------------------------------------
# the host: state dir, lock, load/save, calls log, counters


class Host:
    def __init__(self, state_dir: str | None = None) -> None:
        env_dir = os.environ.get("FAKEHOST_STATE")
        self.container = state_dir is None and not env_dir
        self.dir = state_dir or env_dir or DEFAULT_STATE_DIR
        self.state_file = os.path.join(self.dir, "state.json")
        self.data: dict = {}
        self.dirty = False
        self.created = False
        self._lockfd: int | None = None

    # -- locking
    def lock(self) -> None:
        if self._lockfd is not None:
            return
        if not os.path.isdir(self.dir):
            os.makedirs(self.dir, exist_ok=True)
            # the container case: root creates it, the spec's user must be able to write too
            self.share(self.dir, 0o777)
        path = os.path.join(self.dir, "lock")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            self.share(path)
        except PermissionError:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # flock works on a read-only fd
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._lockfd = fd

    def share(self, path: str, mode: int = 0o666) -> None:
        """In the container case, make state files writable by every user (a test fake)."""
        if self.container:
            try:  # noqa: SIM105 (contextlib's import, with collections and functools: 15% of a call)
                os.chmod(path, mode)
            except OSError:
                pass

    def unlock(self) -> None:
        if self._lockfd is not None:
            os.close(self._lockfd)
            self._lockfd = None

    # -- state
    def load(self) -> dict:
        try:
            with open(self.state_file, encoding="utf-8") as f:
                self.data = loads(f.read())
        except FileNotFoundError:
            self.data = default_state()
            self.created = True
            self.dirty = True
            return self.data
        _fill_defaults(self.data, default_state(self.data.get("root", "/")))
        if any(
            (rt or {}).get("crash_at") or (rt or {}).get("runtime_max_at")
            for rt in self.data["systemd"]["units"].values()
        ):
            Systemd(self).settle()
        return self.data

    def save(self) -> None:
        if not self.dirty:
            return
        tmp = self.state_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(dumps(self.data, indent=1, sort_keys=True) + "\n")
        self.share(tmp)
        os.replace(tmp, self.state_file)
        self.dirty = False

    def mark(self) -> None:
        self.dirty = True

    # -- paths
    @property
    def root(self) -> str:
        return self.data.get("root", "/")

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *[p.lstrip("/") for p in parts])

    @property
    def user(self) -> dict:
        return self.data["user"]

    @property
    def home(self) -> str:
        return self.user["home"]

    @property
    def linger_dir(self) -> str:
        return self.path("var/lib/systemd/linger")

    @property
    def proc_root(self) -> str:
        return self.path("proc")

    @property
    def unit_dir(self) -> str:
        return os.path.join(self.home, ".config/systemd/user")

    @property
    def bin_dir(self) -> str:
        return os.path.join(self.dir, "bin")

    # -- who is calling
    def caller(self) -> str:
        env = os.environ.get("FAKEHOST_CALLER")
        if env:
            return env
        if "caller" in self.data:
            return self.data["caller"]
        uid = os.geteuid()
        if uid == 0:
            return "root"
        try:
            import pwd

            return pwd.getpwuid(uid).pw_name
        except (KeyError, ImportError):
            return str(uid)

    def uid_of(self, name: str) -> int | None:
        if name == "root":
            return 0
        if name == self.user["name"]:
            return int(self.user["uid"])
        return None

    # -- calls log and counters
    def log_call(self, tool: str, argv: list[str], caller: str, mutating: bool, code) -> None:
        line = dumps(
            {
                "tool": tool,
                "argv": argv,
                "caller": caller,
                "mutating": mutating,
                "exit": code,
                "t": round(now(), 6),
            }
        )
        fd = os.open(
            os.path.join(self.dir, "calls.jsonl"),
            os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
            0o666,
        )
        try:
            if self.container:
                try:  # noqa: SIM105 (as in share)
                    os.fchmod(fd, 0o666)
                except OSError:
                    pass
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def _counters_path(self) -> str:
        return os.path.join(self.dir, "counters.json")

    def read_counters(self) -> dict:
        try:
            with open(self._counters_path(), encoding="utf-8") as f:
                return loads(f.read())
        except FileNotFoundError:
            return {"mutating": 0, "fail_at": []}

    def write_counters(self, counters: dict) -> None:
        tmp = self._counters_path() + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(dumps(counters))
        self.share(tmp)
        os.replace(tmp, self._counters_path())

    def count_mutation(self) -> bool:
        """Count one mutating call; True when fault injection says this one must fail."""
        counters = self.read_counters()
        counters["mutating"] = int(counters.get("mutating", 0)) + 1
        fail_at = counters.get("fail_at", [])
        doomed = counters["mutating"] in fail_at
        if doomed:
            fail_at.remove(counters["mutating"])
        counters["fail_at"] = fail_at
        self.write_counters(counters)
        return doomed


# --------------------------------------------------------------------------------------------
# running a tool


class Ctx:
    """One invocation: the host (locked, loaded), argv, the caller."""

    def __init__(self, host: Host, tool: str, argv: list[str]) -> None:
        self.host = host
        self.tool = tool
        self.argv = argv
        self.args = argv[1:]
        self.caller = host.caller()

    @property
    def st(self) -> dict:
        return self.host.data

    @property
    def is_root(self) -> bool:
        return self.caller == "root"


def run(tool: str, main, classify=None) -> None:
    """Run `main(ctx) -> int` under the state lock; log the call; exit.

    `classify(args) -> (mutating, fault_text)`: a mutating call is counted across all tools; when
    fault injection picks it, `fault_text` goes to stderr and the call exits 1 before doing
    anything (state unchanged).
    """
    argv = [os.path.basename(sys.argv[0]) or tool, *sys.argv[1:]]
    host = Host()
    code: int = 1
    mutating = False
    caller = "?"
    host.lock()
    try:
        host.load()
        ctx = Ctx(host, tool, argv)
        caller = ctx.caller
        fault = None
        if classify is not None:
            mutating, fault = classify(ctx.args)
        if mutating and host.count_mutation():
            err(fault or f"{tool}: injected failure")
            code = 1
        else:
            try:
                code = int(main(ctx) or 0)
            except Exit as e:
                code = e.code
        host.save()
    except Exit as e:
        code = e.code
    finally:
        try:
            host.log_call(tool, argv, caller, mutating, code)
        finally:
            host.unlock()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    sys.exit(code)


def run_wrapped(host: Host, tool: str, argv: list[str], caller: str, child_argv: list[str], env):
    """fork/exec `child_argv` (PATH lookup) with `env`, wait, log the wrapper call, exit with its code.

    The wrapper's line in calls.jsonl follows the line of the command it ran.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.execvpe(child_argv[0], child_argv, env)
        except OSError:
            os._exit(127)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        code = 128 - code
    host.lock()
    try:
        host.log_call(tool, argv, caller, False, code)
    finally:
        host.unlock()
    sys.exit(code)


def which(name: str, path: str | None = None) -> str | None:
    if "/" in name:
        return name if os.access(name, os.X_OK) else None
    for d in (path if path is not None else os.environ.get("PATH", "")).split(":"):
        if not d:
            continue
        cand = os.path.join(d, name)
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


# --------------------------------------------------------------------------------------------
# Go-style JSON (encoding/json.MarshalIndent): struct fields in declaration order, map keys sorted
# as strings, omitempty fields dropped.

_HANDLER_FIELDS = ("Path", "Proxy", "Text", "Redirect")
_TCP_FIELDS = ("TCPForward", "HTTPS", "HTTP", "TerminateTLS", "ProxyProtocol")
_SERVE_FIELDS = ("TCP", "Web", "Services", "AllowFunnel", "Foreground")


def _ordered(obj: dict, fields: tuple[str, ...]) -> dict:
    res = {k: obj[k] for k in fields if k in obj and obj[k] not in (None, {}, "", False, 0)}
    for k in obj:  # unknown keys (newer versions): keep them, after the known ones
        if k not in res and k not in fields:
            res[k] = obj[k]
    return res


def _sorted_map(m: dict | None, fn=None) -> dict:
    if not m:
        return {}
    return {k: (fn(m[k]) if fn else m[k]) for k in sorted(m, key=str)}


def _go_web(web: dict) -> dict:
    res = dict(web)
    if "Handlers" in web:
        res["Handlers"] = _sorted_map(web["Handlers"], lambda h: _ordered(h, _HANDLER_FIELDS))
    return res


def _go_tcp(h: dict) -> dict:
    # TCPPortHandler declares HTTPS, HTTP, TCPForward, TerminateTLS in that order
    order = ("HTTPS", "HTTP", "TCPForward", "TerminateTLS", "ProxyProtocol")
    return _ordered(h, order)


def go_serve_config(sc: dict | None) -> dict | None:
    if sc is None:
        return None
    res: dict = {}
    if sc.get("TCP"):
        res["TCP"] = _sorted_map(sc["TCP"], _go_tcp)
    if sc.get("Web"):
        res["Web"] = _sorted_map(sc["Web"], _go_web)
    if sc.get("Services"):

        def svc(s: dict) -> dict:
            r: dict = {}
            if s.get("TCP"):
                r["TCP"] = _sorted_map(s["TCP"], _go_tcp)
            if s.get("Web"):
                r["Web"] = _sorted_map(s["Web"], _go_web)
            if s.get("Tun"):
                r["Tun"] = True
            return r

        res["Services"] = _sorted_map(sc["Services"], svc)
    if sc.get("AllowFunnel"):
        res["AllowFunnel"] = _sorted_map(sc["AllowFunnel"])
    if sc.get("Foreground"):
        res["Foreground"] = _sorted_map(sc["Foreground"], go_serve_config)
    for k in sc:
        if k not in _SERVE_FIELDS and k != "ETag":
            res[k] = sc[k]
    return res


def go_json(obj, indent: str = "  ") -> str:
    """json.MarshalIndent-like text (Go escapes <, > and & in strings; so do we)."""
    text = dumps(obj, indent=len(indent) if indent != "\t" else "\t", ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# --------------------------------------------------------------------------------------------
# systemd unit files


def split_words(s: str) -> list[str]:
    """systemd's word splitting for ExecStart=/Environment=: quotes and backslash escapes."""
    words: list[str] = []
    cur: list[str] = []
    in_word = False
    quote = ""
    i = 0
    while i < len(s):
        c = s[i]
        if quote:
            if c == "\\" and i + 1 < len(s):
                cur.append(s[i + 1])
                i += 2
                continue
            if c == quote:
                quote = ""
            else:
                cur.append(c)
        elif c in "\"'":
            quote = c
            in_word = True
        elif c.isspace():
            if in_word:
                words.append("".join(cur))
                cur = []
                in_word = False
        elif c == "\\" and i + 1 < len(s):
            cur.append(s[i + 1])
            in_word = True
            i += 2
            continue
        else:
            cur.append(c)
            in_word = True
        i += 1
    if in_word:
        words.append("".join(cur))
    return words


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """{section: {key: [values...]}}; continuation lines and comments handled."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if pending:
            line = pending + " " + line.lstrip()
            pending = ""
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.endswith("\\"):
            pending = stripped[:-1].rstrip()
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            current = sections.setdefault(stripped[1:-1], {})
            continue
        if current is None or "=" not in stripped:
            continue
        key, _, value = stripped.partition("=")
        key = key.strip()
        value = value.strip()
        if value == "" and key in ("Environment", "ExecStart"):
            current[key] = []  # an empty assignment resets the list
            continue
        current.setdefault(key, []).append(value)
    return sections


def unit_exec_argv(parsed: dict) -> list[str]:
    values = parsed.get("Service", {}).get("ExecStart", [])
    if not values:
        return []
    line = values[-1]
    while line and line[0] in "@-:+!":
        line = line[1:]
    return split_words(line)


def unit_environment(parsed: dict) -> dict[str, str]:
    env: dict[str, str] = {}
    for value in parsed.get("Service", {}).get("Environment", []):
        for word in split_words(value):
            k, sep, v = word.partition("=")
            if sep:
                env[k] = v
    return env


def process_environment(parsed: dict) -> dict[str, str]:
    """What the main process gets: EnvironmentFile= lines (a `-` prefix: may be missing), then
    Environment= (which wins), as systemd applies them. `systemctl show -p Environment` shows
    only the latter."""
    env: dict[str, str] = {}
    for value in parsed.get("Service", {}).get("EnvironmentFile", []):
        path = value.strip()
        try:
            with open(path.lstrip("-"), encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError:
            continue  # real systemd fails the start for a missing non-`-` file; not modelled
        for line in lines:
            k, sep, v = line.partition("=")
            if sep and k.strip() and not k.lstrip().startswith(("#", ";")):
                env[k.strip()] = v.strip()
    env.update(unit_environment(parsed))
    return env


def unit_port(parsed: dict) -> int | None:
    """The gateway port: `--port N` in ExecStart, else `*_GATEWAY_PORT=N` in Environment=."""
    argv = unit_exec_argv(parsed)
    for i, a in enumerate(argv):
        if a == "--port" and i + 1 < len(argv) and argv[i + 1].isdigit():
            return int(argv[i + 1])
        if a.startswith("--port=") and a[7:].isdigit():
            return int(a[7:])
    for k, v in unit_environment(parsed).items():
        if k.endswith("_GATEWAY_PORT") and v.isdigit():
            return int(v)
    return None


UNIT_SUFFIXES = (".service", ".socket", ".timer", ".target", ".path", ".mount", ".slice")


def unit_name(name: str) -> str:
    return name if name.endswith(UNIT_SUFFIXES) else name + ".service"


# --------------------------------------------------------------------------------------------
# systemd user manager model


# systemctl --timestamp=: "pretty"/"utc" print whole seconds, "us"/"us+utc" add microseconds.
TIMESTAMP_STYLE = "pretty"


def fmt_ts(t: float | None) -> str:
    if not t:
        return ""
    if TIMESTAMP_STYLE in ("us", "us+utc", "µs", "µs+utc"):
        whole = int(t)
        micro = round((t - whole) * 1_000_000)
        if micro == 1_000_000:
            whole, micro = whole + 1, 0
        stamp = time.strftime("%a %Y-%m-%d %H:%M:%S", time.gmtime(whole))
        return f"{stamp}.{micro:06d} UTC"
    return time.strftime("%a %Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


class Systemd:
    """The user manager over the real unit files in ~/.config/systemd/user."""

    def __init__(self, host: Host) -> None:
        self.h = host
        self.st = host.data
        self.sd = self.st.setdefault("systemd", {"loaded": {}, "units": {}})
        self.sd.setdefault("loaded", {})
        self.sd.setdefault("units", {})

    # -- files on disk
    @property
    def unit_dir(self) -> str:
        return self.h.unit_dir

    def file_path(self, name: str) -> str:
        return os.path.join(self.unit_dir, name)

    def disk_units(self) -> list[str]:
        try:
            names = os.listdir(self.unit_dir)
        except FileNotFoundError:
            return []
        return sorted(
            n for n in names if n.endswith(UNIT_SUFFIXES) and os.path.isfile(self.file_path(n))
        )

    def file_info(self, name: str) -> dict | None:
        p = self.file_path(name)
        try:
            with open(p, "rb") as f:
                data = f.read()
            mtime = os.stat(p).st_mtime_ns
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        return {
            "text": data.decode("utf-8", "replace"),
            "mtime_ns": mtime,
            "path": p,
        }

    # -- load state
    def loaded(self, name: str) -> dict | None:
        return self.sd["loaded"].get(name)

    def parsed(self, name: str) -> dict:
        info = self.loaded(name)
        if info is None:
            info = self.file_info(name)
        return parse_unit(info["text"]) if info else {}

    def need_reload(self, name: str) -> bool:
        info = self.loaded(name)
        if info is not None and info.get("transient"):
            return False  # made by `systemd-run`: no file on disk to differ from
        disk = self.file_info(name)
        if info is None:
            return disk is not None
        if disk is None:
            return True
        # The text itself, not a hash of it: importing hashlib (OpenSSL) was an eighth of a `show`.
        return disk["text"] != info["text"] or disk["mtime_ns"] != info["mtime_ns"]

    def daemon_reload(self) -> None:
        new = {}
        for name in self.disk_units():
            info = self.file_info(name)
            if info is not None:
                new[name] = info
        # Transient units (systemd-run) live in /run, not in a unit directory: a reload keeps them.
        for name, info in self.sd["loaded"].items():
            if info.get("transient"):
                new[name] = info
        self.sd["loaded"] = new
        # units that vanished and are not running are forgotten
        for name in list(self.sd["units"]):
            if name not in new and self.active_state(name) in ("inactive", "failed"):
                del self.sd["units"][name]
        self.h.mark()

    # -- install state
    def links_to(self, name: str) -> list[str]:
        """Symlinks in *.wants/ *.requires/ (and aliases) that point at `name`."""
        res = []
        try:
            entries = os.listdir(self.unit_dir)
        except FileNotFoundError:
            return res
        for e in entries:
            d = os.path.join(self.unit_dir, e)
            if (e.endswith(".wants") or e.endswith(".requires")) and os.path.isdir(d):
                link = os.path.join(d, name)
                if os.path.islink(link):
                    res.append(link)
            elif os.path.islink(d) and e != name:
                target = os.readlink(d)
                if os.path.basename(target) == name:
                    res.append(d)
        return sorted(res)

    def unit_file_state(self, name: str) -> str:
        if not os.path.exists(self.file_path(name)):
            return ""
        for link in self.links_to(name):
            if os.path.dirname(link) != self.unit_dir:
                return "enabled"
        install = parse_unit(self.file_info(name)["text"]).get("Install", {})  # type: ignore[index]
        if any(install.get(k) for k in ("WantedBy", "RequiredBy", "Alias", "Also")):
            return "disabled"
        return "static"

    # -- runtime state
    def rt(self, name: str) -> dict:
        return self.sd["units"].get(name, {})

    def active_state(self, name: str) -> str:
        return self.rt(name).get("active", "inactive")

    def sub_state(self, name: str) -> str:
        return self.rt(name).get("sub", "dead")

    def known(self, name: str) -> bool:
        return name in self.sd["loaded"] or name in self.sd["units"]

    def _set_rt(self, name: str, **kw) -> dict:
        rt = self.sd["units"].setdefault(name, {})
        rt.update(kw)
        self.h.mark()
        return rt

    def start(self, name: str) -> None:
        """Start a loaded unit (caller checked it is loaded)."""
        if self.active_state(name) == "active":
            return
        t = now()
        if not name.endswith(".service"):
            # timers, sockets, paths, targets: active without a main process
            sub = {".timer": "waiting", ".socket": "listening", ".path": "waiting"}
            self._set_rt(
                name,
                active="active",
                sub=sub.get(os.path.splitext(name)[1], "active"),
                main_pid=0,
                active_enter=t,
                inactive_exit=t,
                result="success",
            )
            return
        parsed = self.parsed(name)
        port = unit_port(parsed)
        rt = self.rt(name)
        if port is not None and port_owner(self.st, port) is not None:
            # Type=simple: the start job succeeds, the process dies on EADDRINUSE, Restart=always
            self._set_rt(
                name,
                active="activating",
                sub="auto-restart",
                main_pid=0,
                result="exit-code",
                n_restarts=int(rt.get("n_restarts", 0)) + 1,
                wait_port=port,
                inactive_exit=rt.get("inactive_exit") or t,
            )
            return
        argv = unit_exec_argv(parsed) or ["/bin/true"]
        behaviour = start_behaviour(self.st, argv, name)
        transient = bool((self.loaded(name) or {}).get("transient"))
        if behaviour.get("mode") == "fail" and transient:
            # A transient unit restarts nothing (Restart=no): failed, then garbage-collected
            # when it was made with --collect (CollectMode=inactive-or-failed).
            self.journal(name, behaviour)
            self._set_rt(name, active="active", sub="running", main_pid=0, inactive_exit=t)
            self.stop(name, result="exit-code", failed=True)
            return
        if behaviour.get("mode") == "fail":
            # Type=simple: the start job succeeds, the process exits at once, Restart=always.
            self._set_rt(
                name,
                active="activating",
                sub="auto-restart",
                main_pid=0,
                result="exit-code",
                exec_main_code=1,
                exec_main_status=int(behaviour.get("exit_status", 1)),
                n_restarts=int(rt.get("n_restarts", 0)) + 1,
                inactive_exit=rt.get("inactive_exit") or t,
                crash_at=None,
            )
            self.journal(name, behaviour)
            return
        pid = spawn_process(
            self.st, argv, process_environment(parsed), int(self.h.user["uid"]), unit=name
        )
        if behaviour.get("mode") == "unhealthy":
            self.st["processes"][str(pid)]["rpc_broken"] = True
        if behaviour.get("mode") == "slow":
            # a cold start: its RPC answers only `after_s` after the start
            self.st["processes"][str(pid)]["ready_at"] = t + float(behaviour.get("after_s", 1.0))
        if behaviour.get("mode") == "crash_after" and behaviour.get("after_checks"):
            # Deterministic: it dies right after answering that many health checks.
            self.st["processes"][str(pid)]["checks_left"] = int(behaviour["after_checks"])
        if port is not None:
            add_listener(self.st, port, pid, unit=name)
        self._set_rt(
            name,
            active="active",
            sub="running",
            main_pid=pid,
            exec_main_pid=pid,
            exec_start=t,
            active_enter=t,
            inactive_exit=t,
            result="success",
            wait_port=None,
            crash_at=(
                t + float(behaviour.get("after_s", 1.0))
                if behaviour.get("mode") == "crash_after" and not behaviour.get("after_checks")
                else None
            ),
            crash_status=int(behaviour.get("exit_status", 1)),
            crash_journal=behaviour.get("journal") or [],
            runtime_max_at=(
                t + float(runtime_max) if (runtime_max := runtime_max_s(parsed)) else None
            ),
        )
        write_proc(self.h)

    def journal(self, name: str, behaviour: dict) -> None:
        lines = self.sd.setdefault("journal", {}).setdefault(name, [])
        lines.extend([now(), line] for line in behaviour.get("journal") or [])
        self.h.mark()

    def settle(self) -> None:
        """Time passed: a gateway started with a `crash_after` behaviour whose time has come
        exits (status `exit_status`) and systemd restarts it with the same unit, which
        crashes again (activating/auto-restart, NRestarts counting); nothing listens."""
        t = now()
        for name, rt in sorted(self.sd["units"].items()):
            limit = rt.get("runtime_max_at")
            if limit and limit <= t and rt.get("active") == "active":
                # RuntimeMaxSec= passed: systemd stops it (SIGTERM, its whole cgroup) and
                # the unit ends `failed` with result `timeout`.
                self.stop(name, result="timeout", failed=True)
                continue
            at = rt.get("crash_at")
            if not at or at > t or rt.get("active") != "active":
                continue
            if (self.loaded(name) or {}).get("transient"):
                self.journal(name, {"journal": rt.get("crash_journal") or []})
                self.stop(name, result="exit-code", failed=True)  # Restart=no
                continue
            pid = int(rt.get("main_pid") or 0)
            if pid:
                remove_process(self.st, pid)
            rt.update(
                active="activating",
                sub="auto-restart",
                main_pid=0,
                result="exit-code",
                exec_main_code=1,
                exec_main_status=int(rt.get("crash_status", 1)),
                n_restarts=int(rt.get("n_restarts", 0)) + 1,
                crash_at=None,
                active_exit=t,
            )
            self.journal(name, {"journal": rt.get("crash_journal") or []})
            write_proc(self.h)

    def stop(self, name: str, result: str = "success", failed: bool = False) -> None:
        rt = self.rt(name)
        state = self.active_state(name)
        if state in ("inactive",) and not failed:
            return
        t = now()
        pid = int(rt.get("main_pid") or 0)
        freed = remove_process(self.st, pid) if pid else []
        self._set_rt(
            name,
            active="failed" if failed else "inactive",
            sub="failed" if failed else "dead",
            main_pid=0,
            result=result,
            wait_port=None,
            active_exit=t if state == "active" else rt.get("active_exit"),
            inactive_enter=t,
            runtime_max_at=None,
        )
        info = self.loaded(name) or {}
        if info.get("transient") and info.get("collect"):
            # --collect: unloaded as soon as it is inactive or failed (it never existed).
            self.sd["units"].pop(name, None)
            self.sd["loaded"].pop(name, None)
        write_proc(self.h)
        for port in freed:
            self.retry_waiting(port)

    def retry_waiting(self, port: int) -> None:
        """Units in auto-restart for `port` come up once the port is free (RestartSec elapsed)."""
        for name, rt in sorted(self.sd["units"].items()):
            if rt.get("wait_port") == port and port_owner(self.st, port) is None:
                rt["active"] = "inactive"
                self.start(name)

    def start_default_target(self) -> None:
        """The user manager came up: start what default.target pulls in (its .wants, and
        basic.target's: sockets, timers, paths)."""
        names: list[str] = []
        for target in ("default", "basic", "sockets", "timers", "paths"):
            wants = os.path.join(self.unit_dir, f"{target}.target.wants")
            try:
                names += sorted(n for n in os.listdir(wants) if n not in names)
            except FileNotFoundError:
                continue
        self.daemon_reload()
        for n in names:
            if self.loaded(n) is not None:
                self.start(n)

    def stop_all(self) -> None:
        for name in sorted(self.sd["units"]):
            if self.active_state(name) in ("active", "activating", "reloading"):
                self.stop(name)


def runtime_max_s(parsed: dict) -> float | None:
    """A unit's RuntimeMaxSec= in seconds (a plain number, or with an `s`/`min` suffix)."""
    values = parsed.get("Service", {}).get("RuntimeMaxSec") or []
    if not values or values[-1] in ("", "infinity"):
        return None
    value = values[-1].strip()
    scale = 60.0 if value.endswith("min") else 1.0
    try:
        return float(value.removesuffix("min").removesuffix("s")) * scale
    except ValueError:
        return None


def start_behaviour(st: dict, argv: list[str], unit: str | None = None) -> dict:
    """How a gateway started with `argv` (by `unit`) behaves (FakeHost.set_start_behaviour):
    the first rule whose `match` occurs in the command line, and whose `unit`, when it names
    one, is that unit; {} (a healthy start) when none does."""
    line = " ".join(argv)
    for rule in st.get("start_behaviour") or []:
        if rule.get("unit") and rule["unit"] != unit:
            continue
        if rule.get("match") and rule["match"] in line:
            return rule
    return {}


def manager_up(h: Host) -> bool:
    """The user's systemd manager runs while they have a session or linger is on."""
    return bool(h.user.get("session")) or os.path.exists(os.path.join(h.linger_dir, h.user["name"]))


# --------------------------------------------------------------------------------------------
# processes, listeners and the fake /proc


def alloc_pid(st: dict) -> int:
    pid = int(st.get("next_pid", 4100))
    st["next_pid"] = pid + 1 + (pid % 7)  # not strictly consecutive, like a real host
    return pid


def alloc_inode(st: dict) -> int:
    ino = int(st.get("next_inode", 52100))
    st["next_inode"] = ino + 3
    return ino


def spawn_process(st: dict, argv: list[str], environ: dict, uid: int, unit: str | None) -> int:
    pid = alloc_pid(st)
    st.setdefault("processes", {})[str(pid)] = {
        "cmdline": argv,
        "environ": environ,
        "uid": uid,
        "unit": unit,
    }
    return pid


def add_listener(
    st: dict, port: int, pid: int, unit: str | None, addr: str = "127.0.0.1", uid: int | None = None
) -> dict:
    proc = st.get("processes", {}).get(str(pid), {})
    entry = {
        "port": int(port),
        "pid": int(pid),
        "unit": unit,
        "addr": addr,
        "inode": alloc_inode(st),
        "uid": int(uid if uid is not None else proc.get("uid", 0)),
    }
    st.setdefault("listeners", []).append(entry)
    return entry


def remove_process(st: dict, pid: int) -> list[int]:
    """Remove a process and its listeners; returns the freed ports."""
    st.get("processes", {}).pop(str(pid), None)
    freed = [lst["port"] for lst in st.get("listeners", []) if lst["pid"] == pid]
    st["listeners"] = [lst for lst in st.get("listeners", []) if lst["pid"] != pid]
    return freed


def port_owner(st: dict, port: int) -> dict | None:
    for lst in st.get("listeners", []):
        if lst["port"] == port:
            return lst
    return None


TCP_HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"
TCP6_HEADER = (
    "  sl  local_address                         remote_address                        st tx_queue"
    " rx_queue tr tm->when retrnsmt   uid  timeout inode"
)


def _hex4(addr: str) -> str:
    parts = [int(p) for p in addr.split(".")]
    return f"{parts[3]:02X}{parts[2]:02X}{parts[1]:02X}{parts[0]:02X}"


def _hex6(addr: str) -> str:
    import ipaddress

    raw = ipaddress.IPv6Address(addr).packed
    return "".join(f"{b:02X}" for i in range(0, 16, 4) for b in raw[i : i + 4][::-1])


def tcp_row(i: int, lst: dict) -> str:
    """One /proc/net/tcp row for a LISTEN socket (kernel: tcp4_seq_show / get_tcp4_sock):
    "%4d: %08X:%04X %08X:%04X %02X %08X:%08X %02X:%08lX %08X %5u %8d %lu %d %pK %lu %lu %u %u %d",
    padded with spaces to 149 columns (seq_setwidth/seq_pad)."""
    row = (
        f"{i:4d}: {_hex4(lst['addr'])}:{lst['port']:04X} 00000000:0000 0A "
        f"00000000:00000000 00:00000000 00000000 {lst['uid']:5d} {0:8d} {lst['inode']} 1 "
        "0000000000000000 100 0 0 10 0"
    )
    return row.ljust(149)


def tcp6_row(i: int, lst: dict) -> str:
    """One /proc/net/tcp6 row for a LISTEN socket (tcp6_seq_show / get_tcp6_sock; no padding)."""
    return (
        f"{i:4d}: {_hex6(lst['addr'])}:{lst['port']:04X} {'0' * 32}:0000 0A "
        f"00000000:00000000 00:00000000 00000000 {lst['uid']:5d} {0:8d} {lst['inode']} 1 "
        "0000000000000000 100 0 0 10 0"
    )


def write_proc(h: Host) -> None:
    """Rewrite root/proc from state: net/tcp, net/tcp6 and one directory per process."""
    st = h.data
    proc = h.proc_root
    os.makedirs(os.path.join(proc, "net"), exist_ok=True)
    v4 = [lst for lst in st.get("listeners", []) if ":" not in lst["addr"]]
    v6 = [lst for lst in st.get("listeners", []) if ":" in lst["addr"]]
    lines = [TCP_HEADER.ljust(149)] + [tcp_row(i, lst) for i, lst in enumerate(v4)]
    _write(os.path.join(proc, "net/tcp"), "\n".join(lines) + "\n")
    lines6 = [TCP6_HEADER] + [tcp6_row(i, lst) for i, lst in enumerate(v6)]
    _write(os.path.join(proc, "net/tcp6"), "\n".join(lines6) + "\n")
    import shutil

    procs = st.get("processes", {})
    for entry in os.listdir(proc):
        if entry.isdigit() and entry not in procs:
            shutil.rmtree(os.path.join(proc, entry), ignore_errors=True)
    for pid, p in procs.items():
        d = os.path.join(proc, pid)
        os.makedirs(os.path.join(d, "fd"), exist_ok=True)
        _write(os.path.join(d, "cmdline"), "".join(a + "\0" for a in p["cmdline"]))
        comm = os.path.basename(p["cmdline"][0]) if p["cmdline"] else "?"
        _write(os.path.join(d, "comm"), comm[:15] + "\n")
        _write(os.path.join(d, "environ"), "".join(f"{k}={v}\0" for k, v in p["environ"].items()))
        uid = int(p["uid"])
        if p.get("unit"):
            cg = f"/user.slice/user-{uid}.slice/user@{uid}.service/app.slice/{p['unit']}"
        else:
            cg = p.get("cgroup") or f"/user.slice/user-{uid}.slice/session-3.scope"
        _write(os.path.join(d, "cgroup"), f"0::{cg}\n")
        _write(
            os.path.join(d, "status"),
            f"Name:\t{comm[:15]}\nPid:\t{pid}\nUid:\t{p['uid']}\t{p['uid']}\t{p['uid']}\t{p['uid']}\n",
        )
        fds = {
            "0": "/dev/null",
            "1": f"socket:[{int(pid) * 2}]",
            "2": f"socket:[{int(pid) * 2}]",
        }
        for n, lst in enumerate(x for x in st.get("listeners", []) if x["pid"] == int(pid)):
            fds[str(3 + n * 2)] = f"socket:[{lst['inode']}]"
        fd_dir = os.path.join(d, "fd")
        for existing in os.listdir(fd_dir):
            if existing not in fds:
                os.unlink(os.path.join(fd_dir, existing))
        for n, target in fds.items():
            link = os.path.join(fd_dir, n)
            if os.path.islink(link):
                if os.readlink(link) == target:
                    continue
                os.unlink(link)
            os.symlink(target, link)


def _write(path: str, text: str) -> None:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            if f.read() == text:
                return
    except FileNotFoundError:
        pass
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


# --------------------------------------------------------------------------------------------
# tailscale helpers


def ts_dns_name(st: dict) -> str:
    ts = st["tailscale"]
    return f"{ts['hostname']}.{ts['tailnet']}."


def version_tuple(v: str) -> tuple[int, ...]:
    core = v.lstrip("v").split("-")[0]
    res = []
    for p in core.split("."):
        try:
            res.append(int(p))
        except ValueError:
            res.append(0)
    return tuple(res)
