"""The reconciler against real systemd, logind and sudo (issue 5): each scenario is one test in a
throwaway systemd-nspawn container (harness.py), with the stand-in gateway and the fake
`tailscale` CLI, except the last one, which runs the real gateway (and continues with doctor and
device pairing against it: test_doctor.py).

The specs live in tests/e2e/specs/ (host.name `e2e` is the containers' hostname, so the host
check stays on); a test copies one into the container at /etc/reconciler/, with edits where a
scenario needs them, and runs the container's `reconciler` on it as root or as the user.
"""

from __future__ import annotations

import difflib
import json
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

from .harness import Container, gateway_names, gateway_unit

SPECS = Path(__file__).resolve().parent / "specs"
USER = "user"
HOME = "/home/user"
UID = 1000
PORTS = {"ops": 18809, "personal": 18789}
SERVE = {443: "personal", 8443: "ops"}  # https port -> profile (specs/two-gateways.yaml)
UNITS = {p: f"clawdbot-gateway-{p}.service" for p in PORTS}
STRAY = "clawdbot-gateway.service"
UNIT_DIR = f"{HOME}/.config/systemd/user"
SPEC_PATH = "/etc/reconciler/host.yaml"
#: what the user may run with `sudo -n` in scenario 4, exactly the root-only steps' commands
SUDOERS = (
    "user ALL=(root) NOPASSWD: /usr/bin/loginctl enable-linger user, "
    "/usr/local/bin/tailscale set --operator=user\n"
)


# ------------------------------------------------------------------------------------ helpers


def install_spec(c: Container, name: str = "two-gateways.yaml", extra: str = "") -> str:
    """Copy tests/e2e/specs/<name> (plus ``extra`` YAML appended) into the container."""
    text = (SPECS / name).read_text() + textwrap.dedent(extra)
    c.write_file(SPEC_PATH, text, mode=0o644)
    return SPEC_PATH


def reconciler(
    c: Container, *args: str, user: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`reconciler ARGS` in the container (never raises on a non-zero exit)."""
    return c.run(["reconciler", *args], user=user, check=False, timeout=timeout)


def show(r: subprocess.CompletedProcess[str]) -> str:
    return f"exit {r.returncode}\n--- stdout ---\n{r.stdout}\n--- stderr ---\n{r.stderr}"


def apply(c: Container, spec: str = SPEC_PATH, user: str | None = None, expect: int = 0) -> str:
    r = reconciler(c, "apply", spec, "--yes", "--no-color", user=user)
    assert r.returncode == expect, show(r)
    return r.stdout + r.stderr


def plan_json(c: Container, spec: str = SPEC_PATH, user: str | None = None) -> dict[str, Any]:
    r = reconciler(c, "plan", spec, "--json", user=user)
    try:
        doc: dict[str, Any] = json.loads(r.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"plan --json printed no JSON\n{show(r)}") from None
    doc["_exit"] = r.returncode
    return doc


def assert_no_changes(c: Container, spec: str = SPEC_PATH, user: str | None = None) -> None:
    r = reconciler(c, "plan", spec, "--detailed-exitcode", "--no-color", user=user)
    assert r.returncode == 0, show(r)
    assert "No changes" in r.stdout, show(r)


def addresses(doc: dict[str, Any]) -> set[str]:
    return {a["address"] for a in doc["actions"]}


def stat(c: Container, *paths: str) -> list[str]:
    """`%U %G %a` of each path."""
    return c.run(["stat", "-c", "%U %G %a", *paths]).stdout.splitlines()


def serve_config(c: Container) -> dict[str, Any]:
    out = c.run(["tailscale", "serve", "status", "--json"]).stdout
    return json.loads(out) or {}


def serve_targets(c: Container) -> dict[int, str]:
    """HTTPS port -> the `/` proxy target of the node-level serve config."""
    targets = {}
    for hostport, web in serve_config(c).get("Web", {}).items():
        targets[int(hostport.rsplit(":", 1)[1])] = web["Handlers"]["/"]["Proxy"]
    return targets


def operator(c: Container) -> str | None:
    prefs: dict[str, str] = json.loads(c.run(["tailscale", "debug", "prefs"]).stdout)
    return prefs.get("OperatorUser")


def unit_prop(c: Container, unit: str, prop: str) -> str:
    return c.systemctl_user("show", "-p", prop, "--value", unit).stdout.strip()


def answers(c: Container, port: int, timeout: float = 30) -> str:
    """Wait for the port, GET /, return the body (the stand-in names its port and profile)."""
    c.wait_port(port, timeout=timeout)
    status, body = c.http_get(port)
    assert status == 200, body[:300]
    return body


def assert_converged(c: Container) -> None:
    """Everything specs/two-gateways.yaml asks for, read from the container itself."""
    assert c.exists(f"/var/lib/systemd/linger/{USER}")
    assert c.run(["systemctl", "is-active", f"user@{UID}.service"]).stdout.strip() == "active"
    for profile, port in PORTS.items():
        unit = UNITS[profile]
        assert c.systemctl_user("is-enabled", unit, check=False).stdout.strip() == "enabled"
        assert c.systemctl_user("is-active", unit, check=False).stdout.strip() == "active"
        body = answers(c, port)
        assert f"port={port} profile={profile}" in body, body
        n = gateway_names(profile)
        config = json.loads(c.read_file(n["config"]))
        gw = config["gateway"]
        assert (gw["mode"], gw["port"], gw["bind"], gw["tailscale"]["mode"]) == (
            "local",
            port,
            "loopback",
            "off",
        ), config
        assert stat(c, n["state_dir"], n["config"]) == ["user user 700", "user user 600"]
    assert serve_targets(c) == {
        https: f"http://127.0.0.1:{PORTS[profile]}" for https, profile in SERVE.items()
    }
    assert operator(c) == USER


def converge(c: Container, extra: str = "") -> str:
    """Scenario 1's apply on a fresh container, checked; returns apply's output."""
    spec = install_spec(c, extra=extra)
    out = apply(c, spec)
    assert "Converged: the host matches the spec." in out, out
    assert_converged(c)
    return out


# ------------------------------------------------------------------------------ 1. fresh host


def test_fresh_host_converges(container: Container) -> None:
    c = container
    spec = install_spec(c)
    assert not c.exists(f"/var/lib/systemd/linger/{USER}")
    doc = plan_json(c, spec)
    assert doc["_exit"] == 0 and doc["has_changes"], doc
    planned = addresses(doc)
    for want in (
        "linger",
        "tailscale.operator",
        "tailscale.serve[443]",
        "tailscale.serve[8443]",
        "systemd.daemon-reload",
        *(f"profile[{p}].{part}" for p in PORTS for part in ("state", "config", "unit")),
        *(f"profile[{p}].{part}" for p in PORTS for part in ("service", "health")),
    ):
        assert want in planned, (want, sorted(planned))
    assert not [a for a in doc["actions"] if a["blocked"]], doc["actions"]

    out = apply(c, spec)
    assert "Converged: the host matches the spec." in out, out
    assert "0 failed" in out, out
    assert_converged(c)
    # the units the reconciler wrote run the gateway for their profile, and nothing else
    for profile, port in PORTS.items():
        assert unit_prop(c, UNITS[profile], "FragmentPath") == f"{UNIT_DIR}/{UNITS[profile]}"
        assert unit_prop(c, UNITS[profile], "NeedDaemonReload") == "no"
        assert f"--port {port}" in c.read_file(f"{UNIT_DIR}/{UNITS[profile]}")
    assert_no_changes(c, spec)


# ---------------------------------------------------------------------------------- 2. reboot


def test_gateways_come_back_after_reboot(container: Container) -> None:
    c = container
    converge(c)
    before = {p: unit_prop(c, UNITS[p], "InvocationID") for p in PORTS}

    c.reboot()  # the reconciler is not run again: linger + WantedBy=default.target do it
    assert c.boots == 2
    for profile, port in PORTS.items():
        body = answers(c, port, timeout=60)
        assert f"port={port} profile={profile}" in body, body
    after = {p: unit_prop(c, UNITS[p], "InvocationID") for p in PORTS}
    assert all(after[p] and after[p] != before[p] for p in PORTS), (before, after)
    assert_converged(c)
    assert_no_changes(c)


# ----------------------------------------------------------------------------------- 3. drift


def _drift(c: Container, stray_port: int) -> None:
    """Five kinds of drift, made behind the reconciler's back (the way a person would)."""
    ops = gateway_names("ops")
    personal = gateway_names("personal")
    # 1. stop one gateway
    c.systemctl_user("stop", UNITS["ops"])
    # 2. a state dir opened up
    c.run(["chmod", "0755", ops["state_dir"]], user=USER)
    # 3. a port changed in a config, by hand (the gateway is running: it must be restarted)
    c.run(
        [
            "python3",
            "-c",
            "import json, sys; p = sys.argv[1]; d = json.load(open(p)); "
            "d['gateway']['port'] = 18790; open(p, 'w').write(json.dumps(d, indent=2))",
            personal["config"],
        ],
        user=USER,
    )
    # 4. a serve entry removed
    c.run(["tailscale", "serve", "--https=443", "off"])
    # 5. a stray upstream-style unit (`clawdbot gateway install` without --profile)
    c.write_file(f"{UNIT_DIR}/{STRAY}", gateway_unit(c, port=stray_port), user=USER)
    c.systemctl_user("daemon-reload")
    c.systemctl_user("enable", "--now", STRAY)
    c.wait_unit(STRAY, user=USER)
    if stray_port == PORTS["ops"]:  # the port ops left free: the stray has it now
        body = answers(c, stray_port)
        assert "profile=default" in body, body
    assert serve_targets(c) == {8443: f"http://127.0.0.1:{PORTS['ops']}"}


#: what the drift above must plan, besides the stray unit's own removal
DRIFT_ACTIONS = {
    "profile[ops].state",  # chmod 0700
    "profile[ops].service",  # start
    "profile[ops].health",  # verify after the start
    "profile[personal].config",  # port back to 18789
    "profile[personal].service",  # restart: its config changed after it started
    "profile[personal].health",
    "tailscale.serve[443]",  # add back
}


def _finding(doc: dict[str, Any], address: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [f for f in doc["findings"] if f["address"] == address]
    assert found, (address, doc["findings"])
    return found[0]


def _assert_drift_fixed(c: Container, personal_pid_before: str) -> None:
    assert_converged(c)
    assert stat(c, gateway_names("ops")["state_dir"]) == ["user user 700"]
    # the hand-edited config was restored, with the edit kept as the backup
    backup = gateway_names("personal")["config"] + ".reconciler-backup"
    assert json.loads(c.read_file(backup))["gateway"]["port"] == 18790
    assert stat(c, backup) == ["user user 600"]
    # the running personal gateway was restarted to read its restored config
    assert unit_prop(c, UNITS["personal"], "MainPID") != personal_pid_before


def test_drift_is_planned_and_fixed_with_prune(container: Container) -> None:
    """prune_units: true -- the stray unit holding ops's port is stopped, disabled and removed
    before ops starts on that port."""
    c = container
    converge(c, extra="prune_units: true\n")
    personal_pid = unit_prop(c, UNITS["personal"], "MainPID")
    _drift(c, stray_port=PORTS["ops"])

    doc = plan_json(c)
    assert doc["_exit"] == 0 and not doc["errors"], doc
    want = DRIFT_ACTIONS | {f"unit[{STRAY}]", "systemd.daemon-reload"}
    assert addresses(doc) == want, json.dumps(doc["actions"], indent=1)
    assert not [a for a in doc["actions"] if a["blocked"]], doc["actions"]
    # the stray goes before ops starts on the port it holds
    order = [a["address"] for a in doc["actions"]]
    assert order.index(f"unit[{STRAY}]") < order.index("profile[ops].service"), order

    apply(c)
    _assert_drift_fixed(c, personal_pid)
    assert not c.exists(f"{UNIT_DIR}/{STRAY}")
    assert stat(c, f"{UNIT_DIR}/{STRAY}.reconciler-backup") == ["user user 600"]
    assert c.systemctl_user("is-enabled", STRAY, check=False).stdout.strip() in ("", "not-found")
    assert unit_prop(c, STRAY, "LoadState") == "not-found"
    assert not c.exists(f"{UNIT_DIR}/default.target.wants/{STRAY}")
    assert_no_changes(c)


def test_drift_is_planned_and_fixed_without_prune(container: Container) -> None:
    """prune off -- a stray unit is never touched: while it holds a profile's port the plan is
    an error naming its process; once stopped (still enabled) it is reported with a warning
    and the rest of the drift is fixed around it."""
    c = container
    converge(c)
    personal_pid = unit_prop(c, UNITS["personal"], "MainPID")
    _drift(c, stray_port=PORTS["ops"])
    stray_pid = unit_prop(c, STRAY, "MainPID")

    r = reconciler(c, "plan", SPEC_PATH, "--detailed-exitcode", "--no-color")
    assert r.returncode == 1, show(r)
    assert stray_pid in r.stdout + r.stderr and "18809" in r.stdout + r.stderr, show(r)
    r = reconciler(c, "apply", SPEC_PATH, "--yes", "--no-color")
    assert r.returncode == 1 and "nothing was changed" in r.stderr, show(r)
    assert serve_targets(c) == {8443: f"http://127.0.0.1:{PORTS['ops']}"}  # really nothing
    assert unit_prop(c, STRAY, "MainPID") == stray_pid

    c.systemctl_user("stop", STRAY)  # still enabled: it would come back at the next boot
    doc = plan_json(c)
    assert doc["_exit"] == 0 and not doc["errors"], doc
    assert addresses(doc) == DRIFT_ACTIONS, json.dumps(doc["actions"], indent=1)
    warning = _finding(doc, f"unit[{STRAY}]")
    assert warning["severity"] == "warning" and "18809" in warning["message"], warning

    apply(c)
    _assert_drift_fixed(c, personal_pid)
    assert c.exists(f"{UNIT_DIR}/{STRAY}")  # left alone
    assert c.systemctl_user("is-enabled", STRAY, check=False).stdout.strip() == "enabled"
    doc = plan_json(c)
    assert doc["_exit"] == 0 and not doc["actions"], doc
    assert _finding(doc, f"unit[{STRAY}]")["severity"] == "warning"
    assert_no_changes(c)


# --------------------------------------------------------------------------- 4. as the user


def _by_address(out: str) -> dict[str, str]:
    """apply's per-step lines (`+ linger: ok`) -> {address: outcome}."""
    steps = {}
    for line in out.splitlines():
        parts = line.split(" ", 1)
        if len(parts) == 2 and parts[0] in ("+", "~", "-", "=", "!") and ": " in parts[1]:
            address, outcome = parts[1].split(": ", 1)
            steps[address.strip()] = outcome
    return steps


def test_user_apply_sudo_blocked_then_allowed(container: Container) -> None:
    c = container
    spec = install_spec(c)
    assert c.run(["sudo", "-n", "true"], user=USER, check=False).returncode != 0

    # --- no linger, no sudo: the user's files are done; linger and the operator are blocked
    # with the sudo hint, and what needs them (the user's manager, serve) waits.
    doc = plan_json(c, spec, user=USER)
    assert doc["_exit"] == 0, doc
    blocked = {a["address"]: a["blocked"] for a in doc["actions"] if a["blocked"]}
    assert {"linger", "tailscale.operator"} <= set(blocked), doc["actions"]
    for address in ("linger", "tailscale.operator"):
        assert "sudo" in blocked[address], blocked
    # Blocked steps left: the host does not match the spec, so apply exits 2 (issue 12 #3).
    out = apply(c, spec, user=USER, expect=2)
    assert "Not converged: " in out and "Converged" not in out, out
    steps = _by_address(out)
    for profile in PORTS:
        for part in ("state", "config", "unit"):
            assert steps.get(f"profile[{profile}].{part}") == "ok", out
    for address in ("linger", "tailscale.operator"):
        assert steps.get(address, "").startswith("blocked"), out
    assert "sudoers" in out or "sudo" in out, out
    assert not c.exists(f"/var/lib/systemd/linger/{USER}")
    assert operator(c) is None
    for profile in PORTS:
        n = gateway_names(profile)
        assert stat(c, n["state_dir"], n["config"]) == ["user user 700", "user user 600"]
        assert c.exists(f"{UNIT_DIR}/{UNITS[profile]}")

    # --- a sudoers rule allowing exactly the two root-only commands: they run, the rest follows
    assert c.run(["readlink", "-f", "/usr/bin/loginctl"]).stdout.strip() == "/usr/bin/loginctl"
    c.write_file("/etc/sudoers.d/reconciler", SUDOERS, mode=0o440)
    c.run(["visudo", "-c", "-f", "/etc/sudoers.d/reconciler"])
    listed = c.run(["sudo", "-n", "-l"], user=USER).stdout
    assert "/usr/bin/loginctl enable-linger user" in listed, listed
    doc = plan_json(c, spec, user=USER)
    assert not [a for a in doc["actions"] if a["blocked"]], doc["actions"]
    linger_argv = [
        op["argv"]
        for a in doc["actions"]
        if a["address"] == "linger"
        for op in a["operations"]
        if op["type"] == "command"
    ]
    assert linger_argv and linger_argv[0][:2] == ["sudo", "-n"], linger_argv

    out = apply(c, spec, user=USER)
    assert "Converged: the host matches the spec." in out, out
    assert_converged(c)
    assert_no_changes(c, spec, user=USER)
    assert_no_changes(c, spec)  # root sees the same host


def test_user_apply_with_linger_already_on(container: Container) -> None:
    """Linger on (by root), no sudo: the user does everything but the operator, which is
    blocked with the hint; serve then works once root sets the operator."""
    c = container
    spec = install_spec(c)
    c.run(["loginctl", "enable-linger", USER])
    c.wait_unit(f"user@{UID}.service", timeout=30)
    out = apply(c, spec, user=USER, expect=2)  # the operator is blocked: not converged
    steps = _by_address(out)
    assert steps.get("tailscale.operator", "").startswith("blocked"), out
    assert "Not converged: 3 steps blocked, because:" in out, out  # operator + 2 serves
    assert "linger" not in steps, out
    for profile, port in PORTS.items():
        assert steps.get(f"profile[{profile}].service") == "ok", out
        assert f"profile={profile}" in answers(c, port)
    c.run(["tailscale", "set", f"--operator={USER}"])
    out = apply(c, spec, user=USER)
    assert "Converged: the host matches the spec." in out, out
    assert_converged(c)
    assert_no_changes(c, spec, user=USER)


def test_sudo_hints_are_valid_sudoers_rules(container: Container) -> None:
    """The rule a blocked root-only step prints is what an admin pastes into /etc/sudoers.d:
    visudo must accept it, and with it in place the steps run."""
    c = container
    spec = install_spec(c)
    doc = plan_json(c, spec, user=USER)
    hints = {
        a["address"]: a["blocked"]
        for a in doc["actions"]
        if a["address"] in ("linger", "tailscale.operator")
    }
    marker = "with a sudoers rule: "
    assert all(h and marker in h for h in hints.values()), hints
    rules = "".join(h.split(marker, 1)[1].strip() + "\n" for h in hints.values())
    c.write_file("/root/reconciler.sudoers", rules, mode=0o440)
    r = c.run(["visudo", "-c", "-f", "/root/reconciler.sudoers"], check=False)
    assert r.returncode == 0, f"the hinted rules are not valid sudoers:\n{rules}{show(r)}"
    c.run(["install", "-m", "0440", "/root/reconciler.sudoers", "/etc/sudoers.d/reconciler"])
    doc = plan_json(c, spec, user=USER)
    assert not [a for a in doc["actions"] if a["blocked"]], doc["actions"]
    out = apply(c, spec, user=USER)
    assert "Converged: the host matches the spec." in out, out
    assert_converged(c)


def test_user_apply_without_session_environment(container: Container) -> None:
    """The user's manager runs (linger), but the caller's environment has neither
    XDG_RUNTIME_DIR nor DBUS_SESSION_BUS_ADDRESS, as under `sudo -u user`, `su user -c` or
    cron: `systemctl --user` must still reach /run/user/UID."""
    c = container
    spec = install_spec(c)
    c.run(["loginctl", "enable-linger", USER])
    c.wait_unit(f"user@{UID}.service", timeout=30)
    c.run(["tailscale", "set", f"--operator={USER}"])
    bare = ["env", "-u", "XDG_RUNTIME_DIR", "-u", "DBUS_SESSION_BUS_ADDRESS", "reconciler"]
    r = c.run([*bare, "apply", spec, "--yes", "--no-color"], user=USER, check=False)
    assert r.returncode == 0 and "Converged: the host matches the spec." in r.stdout, show(r)
    assert_converged(c)
    r = c.run([*bare, "plan", spec, "--detailed-exitcode", "--no-color"], user=USER, check=False)
    assert r.returncode == 0, show(r)


# ------------------------------------------------------------------------------- 5. dry-run

SNAPSHOT = r"""
import json, os, sys
out = {}
def entry(p):
    st = os.lstat(p)
    e = [oct(st.st_mode), st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    if os.path.islink(p):
        e.append(os.readlink(p))
    return e
for top in sys.argv[1:]:
    if not os.path.lexists(top):
        out[top] = None
        continue
    out[top] = entry(top)
    for d, dirs, files in os.walk(top):
        for n in dirs + files:
            p = os.path.join(d, n)
            out[p] = entry(p)
state = "/var/lib/fakehost/state.json"
out["fakehost-state"] = open(state).read() if os.path.exists(state) else None
print(json.dumps(out, sort_keys=True))
"""
SNAPSHOT_PATHS = [
    HOME,
    "/var/lib/systemd/linger",
    "/etc/systemd",
    "/etc/sudoers.d",
    "/etc/reconciler",
    f"/run/user/{UID}/systemd",
]


#: what `systemctl show` reports of a unit the reconciler could start, stop, enable or restart
UNIT_PROPS = "Id,LoadState,ActiveState,SubState,UnitFileState,MainPID,InvocationID"
UNIT_SUFFIXES = {".service", ".timer", ".socket", ".path", ".target"}
#: the system units the reconciler can change, all through linger: the user's manager and what
#: it runs in. Nothing else in the system manager is the reconciler's (tailscaled is the fake's).
SYSTEM_UNITS = (f"user@{UID}.service", f"user-runtime-dir@{UID}.service", f"user-{UID}.slice")


def _snapshot(c: Container, user_manager: bool) -> dict[str, Any]:
    """What the reconciler could change: the files under SNAPSHOT_PATHS, the fake tailscale's
    state, the linger list, the system units linger drives and, with the user's manager running,
    every user unit the reconciler could touch plus the manager's last (re)load. Not the text of
    `systemctl list-units`: the container's own units come and go by themselves."""
    snap: dict[str, Any] = json.loads(c.run(["python3", "-c", SNAPSHOT, *SNAPSHOT_PATHS]).stdout)
    snap["system-units"] = c.run(["systemctl", "show", *SYSTEM_UNITS, "-p", UNIT_PROPS]).stdout
    snap["loginctl-users"] = c.run(["loginctl", "list-users", "--no-legend"]).stdout
    if user_manager:
        # Its own units (files in UNIT_DIR: gateways, the stray, timers), by name even when a
        # file is missing, so that a unit removed or started by the dry run shows.
        on_disk = {
            Path(p).name
            for p in snap
            if Path(p).parent == Path(UNIT_DIR) and Path(p).suffix in UNIT_SUFFIXES
        }
        units = sorted(on_disk | set(UNITS.values()) | {STRAY})
        snap["user-units-show"] = c.systemctl_user("show", *units, "-p", UNIT_PROPS).stdout
        # A daemon-reload sets UnitsLoadTimestampMonotonic (systemd 252: 0 until the first
        # reload; UnitsLoadStart/FinishTimestamp keep the manager's first load, tried here).
        snap["user-manager-load"] = c.systemctl_user(
            "show", "-p", "UnitsLoadTimestampMonotonic"
        ).stdout
    return snap


def _explain(key: str, before: Any, after: Any) -> str:
    if isinstance(before, str) and isinstance(after, str):
        diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        return f"{key} changed:\n" + "\n".join(diff)
    return f"{key}: {before!r} -> {after!r}"


def _mutating_calls(c: Container) -> list[dict[str, Any]]:
    lines = c.read_file("/var/lib/fakehost/calls.jsonl").splitlines()
    return [call for call in map(json.loads, filter(None, lines)) if call.get("mutating")]


def _settle(c: Container, user_manager: bool, timeout: float = 30) -> dict[str, Any]:
    """A snapshot once the container is quiet: no systemd job queued and two snapshots in a
    row equal (a unit still finishing its boot is not something the dry-run did)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        jobs = c.run(["systemctl", "list-jobs", "--no-legend"]).stdout.strip()
        if user_manager:
            jobs += c.systemctl_user("list-jobs", "--no-legend").stdout.strip()
        snap = _snapshot(c, user_manager)
        if not jobs and snap == last:
            return snap
        if time.monotonic() > deadline:
            raise TimeoutError(f"container not settled after {timeout}s: jobs {jobs!r}")
        last = snap
        time.sleep(0.3)


def _assert_dry_run_changes_nothing(c: Container, user_manager: bool, user: str | None) -> str:
    before = _settle(c, user_manager)
    calls_before = len(_mutating_calls(c))
    time.sleep(0.05)  # a write would get a different mtime even on a coarse clock
    r = reconciler(c, "apply", SPEC_PATH, "--dry-run", "--no-color", user=user)
    assert r.returncode == 0, show(r)
    assert "Dry run: no command was run that changes the host." in r.stdout, show(r)
    after = _snapshot(c, user_manager)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, "\n".join(_explain(k, before.get(k), after.get(k)) for k in changed)
    assert _mutating_calls(c)[calls_before:] == []
    return r.stdout


def test_dry_run_changes_nothing(container: Container) -> None:
    c = container
    install_spec(c, extra="prune_units: true\n")
    # The fake tailscale writes its state file on its first call, even a read: make that call
    # now, so that the comparison below sees only what the reconciler would change.
    c.run(["tailscale", "status", "--json"])
    # a fresh host: the plan is everything, nothing may happen
    out = _assert_dry_run_changes_nothing(c, user_manager=False, user=None)
    assert "linger" in out and "profile[ops].unit" in out, out
    out = _assert_dry_run_changes_nothing(c, user_manager=False, user=USER)
    assert "tailscale.operator" in out, out

    # a host with the user's manager running and a plan with every kind of step: stop/remove
    # a unit, chmod, rewrite a config, start, restart, serve
    converge(c, extra="prune_units: true\n")
    _drift(c, stray_port=PORTS["ops"])
    out = _assert_dry_run_changes_nothing(c, user_manager=True, user=None)
    for address in DRIFT_ACTIONS | {f"unit[{STRAY}]"}:
        assert address in out, (address, out)
    _assert_dry_run_changes_nothing(c, user_manager=True, user=USER)
    assert "profile=default" in answers(c, PORTS["ops"])  # the stray still holds the port


# -------------------------------------------------------------------------- 6. real gateway


def test_real_gateway_as_lingering_user_service(make_container) -> None:  # type: ignore[no-untyped-def]
    c: Container = make_container(real_gateway=True)
    port = 18789
    spec = install_spec(c, "real-gateway.yaml")
    t0 = time.monotonic()
    out = apply(c, spec)
    took = time.monotonic() - t0
    assert "Converged: the host matches the spec." in out, out
    steps = _by_address(out)
    assert steps.get("profile[personal].health") == "ok", out
    unit = UNITS["personal"]
    assert c.exists(f"/var/lib/systemd/linger/{USER}")
    assert c.systemctl_user("is-active", unit).stdout.strip() == "active"
    assert c.systemctl_user("is-enabled", unit).stdout.strip() == "enabled"
    status, body = c.http_get(port)
    assert status == 200 and "<title>Clawdbot Control</title>" in body, body[:500]
    r = c.run(
        ["clawdbot", "gateway", "health", "--url", f"ws://127.0.0.1:{port}", "--json"],
        user=USER,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0 and json.loads(r.stdout)["ok"] is True, show(r)
    # the real gateway accepted the reconciler's config (it refuses unknown keys) and kept it
    n = gateway_names("personal")
    gw = json.loads(c.read_file(n["config"]))["gateway"]
    assert (gw["mode"], gw["port"], gw["bind"], gw["tailscale"]["mode"]) == (
        "local",
        port,
        "loopback",
        "off",
    )
    assert stat(c, n["state_dir"], n["config"]) == ["user user 700", "user user 600"]
    assert serve_targets(c) == {443: f"http://127.0.0.1:{port}"}
    assert c.exists(f"{HOME}/clawd-personal")  # the workspace the gateway uses for the profile
    assert_no_changes(c, spec)

    # A reboot: the lingering user manager starts it again, nothing re-run. No compile cache
    # survives (/tmp is a tmpfs), so this start is as slow as the first one.
    before = unit_prop(c, unit, "InvocationID")
    c.reboot()
    t1 = time.monotonic()
    c.wait_port(port, timeout=180)
    back = time.monotonic() - t1
    status, body = c.http_get(port)
    assert status == 200 and "<title>Clawdbot Control</title>" in body, body[:500]
    assert unit_prop(c, unit, "InvocationID") not in ("", before)
    assert_no_changes(c, spec)
    print(f"real gateway: apply {took:.1f}s, listening {back:.1f}s after the reboot")

    # The same container, continued (one boot of the real gateway for both): doctor with the
    # real RPC health check, its broken links, and a real pairing request (issue 15).
    from .test_doctor import doctor_and_pairing_with_the_real_gateway

    doctor_and_pairing_with_the_real_gateway(c)
