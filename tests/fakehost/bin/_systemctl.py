"""Fake `systemctl` (systemd 252): a user manager (`--user`, or `--user -M USER@` as root) over
the real unit files in ~/.config/systemd/user.  The system manager is a stub that only knows
tailscaled.service.  State: see _fakestate.py (state["systemd"])."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import _fakestate as fs

MUTATING = {
    "daemon-reload",
    "daemon-reexec",
    "enable",
    "disable",
    "reenable",
    "start",
    "stop",
    "restart",
    "try-restart",
    "reload-or-restart",
    "reset-failed",
    "kill",
    "mask",
    "unmask",
}

BOOL_OPTS = {
    "--user",
    "--system",
    "--now",
    "--no-reload",
    "--no-block",
    "--no-pager",
    "--no-legend",
    "--no-ask-password",
    "--plain",
    "--full",
    "-l",
    "--all",
    "-a",
    "--quiet",
    "-q",
    "--value",
    "--runtime",
    "--force",
    "-f",
    "--wait",
}
ARG_OPTS = {
    "-p",
    "--property",
    "-M",
    "--machine",
    "-t",
    "--type",
    "--state",
    "-o",
    "--output",
    "-n",
    "--lines",
    "--signal",
    "-s",
    "--kill-whom",
    "--job-mode",
    "-H",
    "--host",
    "--timestamp",
    "--what",
}

# `systemctl show` prints properties in the manager's D-Bus order: the unit type's interface
# (org.freedesktop.systemd1.Service), exec/kill context, then org.freedesktop.systemd1.Unit.
PROP_ORDER = (
    "Type",
    "ExitType",
    "Restart",
    "RestartUSec",
    "TimeoutStartUSec",
    "TimeoutStopUSec",
    "RemainAfterExit",
    "MainPID",
    "ControlPID",
    "StatusText",
    "Result",
    "NRestarts",
    "ExecMainStartTimestamp",
    "ExecMainStartTimestampMonotonic",
    "ExecMainExitTimestamp",
    "ExecMainExitTimestampMonotonic",
    "ExecMainPID",
    "ExecMainCode",
    "ExecMainStatus",
    "ExecStart",
    "Slice",
    "ControlGroup",
    "Environment",
    "KillMode",
    "Id",
    "Names",
    "Description",
    "LoadState",
    "ActiveState",
    "FreezerState",
    "SubState",
    "FragmentPath",
    "SourcePath",
    "DropInPaths",
    "UnitFileState",
    "UnitFilePreset",
    "StateChangeTimestamp",
    "StateChangeTimestampMonotonic",
    "InactiveExitTimestamp",
    "InactiveExitTimestampMonotonic",
    "ActiveEnterTimestamp",
    "ActiveEnterTimestampMonotonic",
    "ActiveExitTimestamp",
    "ActiveExitTimestampMonotonic",
    "InactiveEnterTimestamp",
    "InactiveEnterTimestampMonotonic",
    "CanStart",
    "CanStop",
    "CanReload",
    "NeedDaemonReload",
    "LoadError",
)


class Opts:
    def __init__(self):
        self.user = False
        self.machine = None
        self.props = []
        self.flags = set()
        self.output = None
        self.verb = None
        self.args = []


def parse(args):
    o = Opts()
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            o.args += args[i + 1 :]
            break
        if a.startswith("--") and "=" in a:
            k, v = a.split("=", 1)
            if k == "--property":
                o.props += [p for p in v.split(",") if p]
            elif k == "--machine":
                o.machine = v
            elif k == "--output":
                o.output = v
            elif k == "--timestamp":
                fs.TIMESTAMP_STYLE = v
            i += 1
            continue
        if a in ARG_OPTS:
            v = args[i + 1] if i + 1 < len(args) else ""
            if a in ("-p", "--property"):
                o.props += [p for p in v.split(",") if p]
            elif a in ("-M", "--machine"):
                o.machine = v
            elif a in ("-o", "--output"):
                o.output = v
            elif a == "--timestamp":
                fs.TIMESTAMP_STYLE = v
            i += 2
            continue
        if a.startswith("-p") and len(a) > 2 and not a.startswith("--"):
            o.props += [p for p in a[2:].split(",") if p]
        elif a.startswith("-M") and len(a) > 2 and not a.startswith("--"):
            o.machine = a[2:]
        elif a.startswith("-"):
            if a not in BOOL_OPTS:
                raise fs.fail(f"systemctl: unrecognized option '{a}'")
            o.flags.add(a)
        elif o.verb is None:
            o.verb = a
        else:
            o.args.append(a)
        i += 1
    o.user = "--user" in o.flags
    o.quiet = "--quiet" in o.flags or "-q" in o.flags
    return o


def classify(args):
    # the verb is the first non-option word (option values such as `-p X`, `-M X` skipped)
    skip = False
    verb = None
    for a in args:
        if skip:
            skip = False
            continue
        if a in ARG_OPTS:
            skip = True
            continue
        if not a.startswith("-"):
            verb = a
            break
    if verb not in MUTATING:
        return False, None
    return True, {
        "daemon-reload": "Failed to reload daemon: Connection timed out",
        "daemon-reexec": "Failed to reload daemon: Connection timed out",
        "enable": "Failed to enable unit: Connection timed out",
        "disable": "Failed to disable unit: Connection timed out",
        "reenable": "Failed to enable unit: Connection timed out",
        "mask": "Failed to mask unit: Connection timed out",
        "unmask": "Failed to unmask unit: Connection timed out",
    }.get(verb, _job_failed(args, verb))


def _job_failed(args, verb):
    units = [a for a in args if not a.startswith("-") and a != verb]
    unit = fs.unit_name(units[-1]) if units else "unit.service"
    scope = "--user " if "--user" in args else ""
    if verb in ("start", "restart", "try-restart", "reload-or-restart"):
        return (
            f"Job for {unit} failed because the control process exited with error code.\n"
            f'See "systemctl {scope}status {unit}" and "journalctl {scope}-xeu {unit}" for details.'
        )
    if verb == "reset-failed":
        return f"Failed to reset failed state of unit {unit}: Connection timed out"
    return f"Failed to {verb} {unit}: Connection timed out"


# ---------------------------------------------------------------------------------------------
# which manager


def connect(ctx, o):
    """Return 'user' or 'system' after checking we can reach that manager like real systemctl."""
    h = ctx.host
    if not o.user:
        return "system"
    target = None
    if o.machine is not None:
        m = o.machine
        target = m.split("@", 1)[0] if "@" in m else None
        if target == "" or target is None:
            target = ctx.caller
        if target != ctx.caller and not ctx.is_root:
            raise fs.fail("Failed to connect to bus: Permission denied")
    else:
        target = ctx.caller
        if ctx.is_root:
            raise fs.fail(
                "Failed to connect to bus: $DBUS_SESSION_BUS_ADDRESS and $XDG_RUNTIME_DIR not "
                "defined (consider using --machine=<user>@.host --user to connect to bus of other user)"
            )
    if target != h.user["name"] or not fs.manager_up(h):
        raise fs.fail("Failed to connect to bus: No such file or directory")
    return "user"


# ---------------------------------------------------------------------------------------------
# properties


def mono(ctx, t):
    if not t:
        return "0"
    return str(int((t - float(ctx.st.get("boot_time", 0))) * 1e6))


def exec_start_prop(sd, name, parsed, rt):
    values = parsed.get("Service", {}).get("ExecStart", [])
    if not values:
        return ""
    argv = fs.unit_exec_argv(parsed)
    path = argv[0] if argv else ""
    start = fs.fmt_ts(rt.get("exec_start")) or "n/a"
    pid = rt.get("exec_main_pid") or 0
    running = rt.get("active") == "active"
    stop = "n/a" if running or not rt.get("active_exit") else fs.fmt_ts(rt.get("active_exit"))
    code = "(null)" if running or not pid else "killed"
    status = "0/0" if running or not pid else "15/TERM"
    return (
        f"{{ path={path} ; argv[]={' '.join(argv)} ; ignore_errors=no ; start_time=[{start}] ;"
        f" stop_time=[{stop}] ; pid={pid} ; code={code} ; status={status} }}"
    )


def env_prop(parsed):
    words = []
    for k, v in fs.unit_environment(parsed).items():
        w = f"{k}={v}"
        words.append('"' + w.replace('"', '\\"') + '"' if (" " in w or '"' in w) else w)
    return " ".join(words)


def unit_props(ctx, sd, name):
    loaded = sd.loaded(name)
    rt = sd.rt(name)
    parsed = fs.parse_unit(loaded["text"]) if loaded else {}
    svc = parsed.get("Service", {})
    active = sd.active_state(name)
    sub = sd.sub_state(name)
    desc = (parsed.get("Unit", {}).get("Description") or [name])[-1]
    uid = ctx.host.user["uid"]
    restart = (svc.get("Restart") or ["no"])[-1]
    restart_sec = (svc.get("RestartSec") or ["0.1"])[-1]
    try:
        restart_us = int(float(restart_sec.rstrip("s")) * 1_000_000)
    except ValueError:
        restart_us = 100000
    state_change = (
        max(
            (rt.get(k) or 0)
            for k in ("active_enter", "active_exit", "inactive_enter", "inactive_exit")
        )
        or None
    )
    main_pid = rt.get("main_pid") or 0
    exec_pid = rt.get("exec_main_pid") or 0
    p = {
        "Type": (svc.get("Type") or ["simple"])[-1],
        "ExitType": "main",
        "Restart": restart,
        "RestartUSec": f"{restart_us // 1_000_000}s"
        if restart_us % 1_000_000 == 0
        else f"{restart_us // 1000}ms",
        "TimeoutStartUSec": "1min 30s",
        "TimeoutStopUSec": "1min 30s",
        "RemainAfterExit": "no",
        "MainPID": str(main_pid),
        "ControlPID": "0",
        "StatusText": "",
        "Result": rt.get("result", "success"),
        "NRestarts": str(rt.get("n_restarts", 0)),
        "ExecMainStartTimestamp": fs.fmt_ts(rt.get("exec_start")),
        "ExecMainStartTimestampMonotonic": mono(ctx, rt.get("exec_start")),
        "ExecMainExitTimestamp": "" if active == "active" else fs.fmt_ts(rt.get("active_exit")),
        "ExecMainExitTimestampMonotonic": "0"
        if active == "active"
        else mono(ctx, rt.get("active_exit")),
        "ExecMainPID": str(exec_pid),
        "ExecMainCode": str(rt["exec_main_code"])
        if "exec_main_code" in rt
        else ("0" if active == "active" or not exec_pid else "2"),
        "ExecMainStatus": str(rt["exec_main_status"])
        if "exec_main_status" in rt
        else ("0" if active == "active" or not exec_pid else "15"),
        "ExecStart": exec_start_prop(sd, name, parsed, rt) if loaded else "",
        "Slice": "app.slice" if loaded else "",
        "ControlGroup": f"/user.slice/user-{uid}.slice/user@{uid}.service/app.slice/{name}"
        if active == "active"
        else "",
        "Environment": env_prop(parsed),
        "KillMode": (svc.get("KillMode") or ["control-group"])[-1],
        "Id": name,
        "Names": name,
        "Description": desc,
        "LoadState": "loaded" if loaded else "not-found",
        "ActiveState": active,
        "FreezerState": "running",
        "SubState": sub,
        "FragmentPath": loaded["path"] if loaded else "",
        "SourcePath": "",
        "DropInPaths": "",
        "UnitFileState": sd.unit_file_state(name) if loaded else "",
        "UnitFilePreset": "enabled" if loaded else "",
        "StateChangeTimestamp": fs.fmt_ts(state_change),
        "StateChangeTimestampMonotonic": mono(ctx, state_change),
        "InactiveExitTimestamp": fs.fmt_ts(rt.get("inactive_exit")),
        "InactiveExitTimestampMonotonic": mono(ctx, rt.get("inactive_exit")),
        "ActiveEnterTimestamp": fs.fmt_ts(rt.get("active_enter")),
        "ActiveEnterTimestampMonotonic": mono(ctx, rt.get("active_enter")),
        "ActiveExitTimestamp": fs.fmt_ts(rt.get("active_exit")),
        "ActiveExitTimestampMonotonic": mono(ctx, rt.get("active_exit")),
        "InactiveEnterTimestamp": fs.fmt_ts(rt.get("inactive_enter")),
        "InactiveEnterTimestampMonotonic": mono(ctx, rt.get("inactive_enter")),
        "CanStart": "yes" if loaded else "no",
        "CanStop": "yes" if loaded else "no",
        "CanReload": "no",
        "NeedDaemonReload": "yes" if sd.need_reload(name) else "no",
        "LoadError": ""
        if loaded
        else f'org.freedesktop.systemd1.NoSuchUnit "Unit {name} not found."',
    }
    return p


def system_props(ctx, name):
    ts = ctx.st["tailscale"]
    if name == "tailscaled.service":
        up = ts.get("daemon")
        return {
            "Type": "notify",
            "MainPID": "812" if up else "0",
            "Id": name,
            "Names": name,
            "Description": "Tailscale node agent",
            "LoadState": "loaded",
            "ActiveState": "active" if up else "inactive",
            "SubState": "running" if up else "dead",
            "FragmentPath": "/lib/systemd/system/tailscaled.service",
            "UnitFileState": "enabled",
            "NeedDaemonReload": "no",
        }
    return {
        "Type": "simple",
        "MainPID": "0",
        "Id": name,
        "Names": name,
        "Description": name,
        "LoadState": "not-found",
        "ActiveState": "inactive",
        "SubState": "dead",
        "FragmentPath": "",
        "UnitFileState": "",
        "NeedDaemonReload": "no",
    }


def print_blocks(o, blocks):
    value_only = "--value" in o.flags
    texts = []
    for props in blocks:
        lines = []
        for k in PROP_ORDER:
            if k not in props:
                continue
            if o.props and k not in o.props:
                continue
            if not o.props and props[k] == "" and "--all" not in o.flags and "-a" not in o.flags:
                continue
            lines.append(props[k] if value_only else f"{k}={props[k]}")
        texts.append("\n".join(lines))
    if texts:
        fs.out("\n\n".join(texts))


def cmd_show(ctx, o, mode):
    units = [fs.unit_name(u) for u in o.args]
    if not units:
        manager = {
            "Version": "252.33-1~deb12u1",
            "Architecture": "x86-64",
            "SystemState": "running",
        }
        for k, v in manager.items():
            if not o.props or k in o.props:
                fs.out(v if "--value" in o.flags else f"{k}={v}")
        return 0
    if mode == "system":
        print_blocks(o, [system_props(ctx, u) for u in units])
        return 0
    sd = fs.Systemd(ctx.host)
    print_blocks(o, [unit_props(ctx, sd, u) for u in units])
    return 0


# ---------------------------------------------------------------------------------------------
# verbs


def warn_reload(o, sd, name):
    if sd.loaded(name) is not None and sd.need_reload(name):
        scope = "--user " if o.user else ""
        fs.err(
            f"Warning: The unit file, source configuration file or drop-ins of {name} changed on "
            f"disk. Run 'systemctl {scope}daemon-reload' to reload units."
        )


def do_start(ctx, o, sd, verb):
    code = 0
    for name in [fs.unit_name(u) for u in o.args]:
        if sd.loaded(name) is None:
            if verb == "start" and sd.active_state(name) == "active":
                continue  # running although its file is gone: nothing to do
            fs.err(f"Failed to {verb} {name}: Unit {name} not found.")
            code = 5
            continue
        warn_reload(o, sd, name)
        if verb == "start":
            if sd.active_state(name) == "activating":
                continue
            sd.start(name)
        elif verb in ("restart", "reload-or-restart") or (
            verb == "try-restart" and sd.active_state(name) == "active"
        ):
            sd.stop(name)
            sd.start(name)
    return code


def do_stop(ctx, o, sd):
    code = 0
    for name in [fs.unit_name(u) for u in o.args]:
        if not sd.known(name):
            fs.err(f"Failed to stop {name}: Unit {name} not loaded.")
            code = 5
            continue
        warn_reload(o, sd, name)
        sd.stop(name)
    return code


def install_section(sd, name):
    info = sd.file_info(name)
    return fs.parse_unit(info["text"]).get("Install", {}) if info else None


NO_INSTALL = (
    "The unit files have no installation config (WantedBy=, RequiredBy=, Also=,\n"
    "Alias= settings in the [Install] section, and DefaultInstance= for template\n"
    "units). This means they are not meant to be enabled or disabled using systemctl.\n"
    " \n"
    "Possible reasons for having this kind of units are:\n"
    "• A unit may be statically enabled by being symlinked from another unit's\n"
    "  .wants/ or .requires/ directory.\n"
    "• A unit's purpose may be to act as a helper for some other unit which has\n"
    "  a requirement dependency on it.\n"
    "• A unit may be started when needed via activation (socket, path, timer,\n"
    "  D-Bus, udev, scripted systemctl call, ...).\n"
    "• In case of template units, the unit is meant to be enabled with some\n"
    "  instance name specified."
)


def do_enable(ctx, o, sd):
    names = [fs.unit_name(u) for u in o.args]
    if not names:
        raise fs.fail("Too few arguments.")
    for name in names:
        install = install_section(sd, name)
        if install is None:
            raise fs.fail(f"Failed to enable unit: Unit file {name} does not exist.")
    static = []
    for name in names:
        install = install_section(sd, name)
        path = sd.file_path(name)
        targets = [(t, ".wants") for v in install.get("WantedBy", []) for t in v.split()]
        targets += [(t, ".requires") for v in install.get("RequiredBy", []) for t in v.split()]
        aliases = [a for v in install.get("Alias", []) for a in v.split()]
        if not targets and not aliases:
            static.append(name)
            continue
        for target, suffix in targets:
            d = os.path.join(sd.unit_dir, target + suffix)
            link = os.path.join(d, name)
            if os.path.islink(link) and os.readlink(link) == path:
                continue
            os.makedirs(d, exist_ok=True)
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(path, link)
            fs.err(f"Created symlink {link} → {path}.")
        for alias in aliases:
            link = os.path.join(sd.unit_dir, alias)
            if os.path.islink(link) and os.readlink(link) == path:
                continue
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(path, link)
            fs.err(f"Created symlink {link} → {path}.")
    if static:
        fs.err(NO_INSTALL)
    if "--no-reload" not in o.flags:
        sd.daemon_reload()
    if "--now" in o.flags:
        return do_start(ctx, o, sd, "start")
    return 0


def do_disable(ctx, o, sd):
    names = [fs.unit_name(u) for u in o.args]
    if not names:
        raise fs.fail("Too few arguments.")
    for name in names:
        if not os.path.exists(sd.file_path(name)) and not sd.links_to(name):
            raise fs.fail(f"Failed to disable unit: Unit file {name} does not exist.")
    for name in names:
        for link in sd.links_to(name):
            os.unlink(link)
            fs.err(f'Removed "{link}".')
    if "--no-reload" not in o.flags:
        sd.daemon_reload()
    if "--now" in o.flags:
        return do_stop(ctx, o, sd)
    return 0


def do_is_active(ctx, o, sd, mode):
    any_active = False
    for name in [fs.unit_name(u) for u in o.args]:
        state = (
            system_props(ctx, name)["ActiveState"] if mode == "system" else sd.active_state(name)
        )
        any_active = any_active or state in ("active", "reloading")
        if not o.quiet:
            fs.out(state)
    return 0 if any_active else 3


def do_is_failed(ctx, o, sd):
    any_failed = False
    for name in [fs.unit_name(u) for u in o.args]:
        state = sd.active_state(name)
        any_failed = any_failed or state == "failed"
        if not o.quiet:
            fs.out(state)
    return 0 if any_failed else 1


def do_is_enabled(ctx, o, sd, mode):
    ok = False
    code = 0
    for name in [fs.unit_name(u) for u in o.args]:
        if mode == "system":
            state = system_props(ctx, name)["UnitFileState"]
        else:
            state = sd.unit_file_state(name)
        if not state:
            fs.err(f"Failed to get unit file state for {name}: No such file or directory")
            code = 1
            continue
        if state in ("enabled", "enabled-runtime", "static", "alias", "indirect", "generated"):
            ok = True
        if not o.quiet:
            fs.out(state)
    if code:
        return code
    return 0 if ok else 1


def do_reset_failed(ctx, o, sd):
    names = [fs.unit_name(u) for u in o.args] or [
        n for n in sd.sd["units"] if sd.active_state(n) == "failed"
    ]
    for name in names:
        if not sd.known(name):
            raise fs.fail(f"Failed to reset failed state of unit {name}: Unit {name} not loaded.")
        rt = sd.rt(name)
        if rt.get("active") == "failed":
            sd._set_rt(name, active="inactive", sub="dead", result="success")
        elif rt:
            sd._set_rt(name, result="success", n_restarts=0)
    return 0


def list_unit_files(ctx, o, sd):
    import fnmatch

    names = set(sd.disk_units())
    rows = []
    for n in sorted(names):
        if o.args and not any(fnmatch.fnmatch(n, pat) for pat in o.args):
            continue
        rows.append((n, sd.unit_file_state(n), "enabled"))
    if o.output == "json":
        import json

        fs.out(
            json.dumps(
                [{"unit_file": r[0], "state": r[1], "preset": r[2]} for r in rows],
                separators=(",", ":"),
            )
        )
        return 0
    if not rows:
        if "--no-legend" not in o.flags:
            fs.out("0 unit files listed.")
        return 0 if not o.args else 1
    w = max(len("UNIT FILE"), *(len(r[0]) for r in rows))
    if "--no-legend" not in o.flags:
        fs.out(f"{'UNIT FILE':<{w}} STATE    VENDOR PRESET")
    for r in rows:
        fs.out(f"{r[0]:<{w}} {r[1]:<8} {r[2]}")
    if "--no-legend" not in o.flags:
        fs.out(f"\n{len(rows)} unit files listed.")
    return 0


def list_units(ctx, o, sd):
    import fnmatch

    show_all = "--all" in o.flags or "-a" in o.flags
    names = set(sd.sd["loaded"]) | set(sd.sd["units"])
    rows = []
    for n in sorted(names):
        if o.args and not any(fnmatch.fnmatch(n, pat) for pat in o.args):
            continue
        active = sd.active_state(n)
        if not show_all and active == "inactive":
            continue
        loaded = sd.loaded(n)
        desc = (
            (fs.parse_unit(loaded["text"]).get("Unit", {}).get("Description") or [n])[-1]
            if loaded
            else n
        )
        rows.append((n, "loaded" if loaded else "not-found", active, sd.sub_state(n), desc))
    if o.output == "json":
        import json

        keys = ("unit", "load", "active", "sub", "description")
        fs.out(json.dumps([dict(zip(keys, r, strict=True)) for r in rows], separators=(",", ":")))
        return 0
    w = max([len("UNIT")] + [len(r[0]) for r in rows])
    if "--no-legend" not in o.flags:
        fs.out(f"  {'UNIT':<{w}} LOAD      ACTIVE   SUB     DESCRIPTION")
    for r in rows:
        fs.out(f"  {r[0]:<{w}} {r[1]:<9} {r[2]:<8} {r[3]:<7} {r[4]}")
    if "--no-legend" not in o.flags:
        fs.out(f"\n{len(rows)} loaded units listed.")
    return 0


def system_verb(ctx, o):
    """The system manager stub: tailscaled.service and nothing else."""
    if o.verb == "is-system-running":
        fs.out("running")
        return 0
    if o.verb == "show":
        return cmd_show(ctx, o, "system")
    if o.verb == "is-active":
        return do_is_active(ctx, o, None, "system")
    if o.verb == "is-enabled":
        return do_is_enabled(ctx, o, None, "system")
    if o.verb in MUTATING:
        if not ctx.is_root:
            unit = fs.unit_name(o.args[0]) if o.args else ""
            raise fs.fail(
                f"Failed to {o.verb} {unit}: Interactive authentication required.\n"
                f"See system logs and 'systemctl status {unit}' for details."
            )
        if o.verb == "daemon-reload":
            return 0
        code = 0
        for name in [fs.unit_name(u) for u in o.args]:
            if name != "tailscaled.service":
                fs.err(f"Failed to {o.verb} {name}: Unit {name} not found.")
                code = 5
                continue
            if o.verb in ("start", "restart"):
                ctx.st["tailscale"]["daemon"] = True
            elif o.verb == "stop":
                ctx.st["tailscale"]["daemon"] = False
            ctx.host.mark()
        return code
    if o.verb == "status":
        return 3
    raise fs.fail(f"fakehost: systemctl {o.verb} (system manager) is not simulated", 2)


def main(ctx):
    o = parse(ctx.args)
    if o.verb is None:
        o.verb = "list-units"
    mode = connect(ctx, o)
    if mode == "system":
        return system_verb(ctx, o)
    sd = fs.Systemd(ctx.host)
    v = o.verb
    if v == "daemon-reload" or v == "daemon-reexec":
        sd.daemon_reload()
        return 0
    if v == "show":
        return cmd_show(ctx, o, mode)
    if v in ("start", "restart", "try-restart", "reload-or-restart"):
        if not o.args:
            raise fs.fail("Too few arguments.")
        return do_start(ctx, o, sd, v)
    if v == "stop":
        if not o.args:
            raise fs.fail("Too few arguments.")
        return do_stop(ctx, o, sd)
    if v in ("enable", "reenable"):
        return do_enable(ctx, o, sd)
    if v == "disable":
        return do_disable(ctx, o, sd)
    if v == "reset-failed":
        return do_reset_failed(ctx, o, sd)
    if v == "is-active":
        return do_is_active(ctx, o, sd, mode)
    if v == "is-failed":
        return do_is_failed(ctx, o, sd)
    if v == "is-enabled":
        return do_is_enabled(ctx, o, sd, mode)
    if v == "is-system-running":
        fs.out("running")
        return 0
    if v == "list-unit-files":
        return list_unit_files(ctx, o, sd)
    if v == "list-units":
        return list_units(ctx, o, sd)
    if v == "cat":
        code = 0
        for name in [fs.unit_name(u) for u in o.args]:
            info = sd.file_info(name)
            if info is None:
                fs.err(f"No files found for {name}.")
                code = 1
                continue
            fs.out(f"# {info['path']}")
            sys.stdout.write(info["text"])
        return code
    if v == "status":
        code = 0
        for name in [fs.unit_name(u) for u in o.args]:
            active = sd.active_state(name)
            if not sd.known(name):
                fs.err(f"Unit {name} could not be found.")
                code = 4
                continue
            p = unit_props(ctx, sd, name)
            fs.out(f"● {name} - {p['Description']}")
            fs.out(
                f"     Loaded: {p['LoadState']} ({p['FragmentPath']}; {p['UnitFileState']}; preset: enabled)"
            )
            fs.out(f"     Active: {active} ({sd.sub_state(name)})")
            if p["MainPID"] != "0":
                fs.out(f"   Main PID: {p['MainPID']}")
            if active != "active":
                code = code or 3
        return code
    raise fs.fail(f"fakehost: systemctl {v} is not simulated", 2)
