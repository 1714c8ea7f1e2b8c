"""Fake `tailscale` CLI (v1.10x behaviour, cmd/tailscale/cli): version, status, serve, funnel,
set --operator, get operator, debug prefs.  State: see _fakestate.py."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import _fakestate as fs

SOCK = "/var/run/tailscale/tailscaled.sock"
HELP_SERVE = "try `tailscale {} --help` for usage info"


class FlagError(Exception):
    pass


def parse_flags(args, spec):
    """Go `flag` package semantics: flags first, stops at the first non-flag or at `--`."""
    flags = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        name = a.lstrip("-")
        value = None
        if "=" in name:
            name, value = name.split("=", 1)
        if name not in spec:
            raise FlagError(f"flag provided but not defined: -{name}")
        kind = spec[name]
        if kind == "bool":
            flags[name] = value is None or value.lower() in ("1", "t", "true", "yes")
        else:
            if value is None:
                i += 1
                if i >= len(args):
                    raise FlagError(f"flag needs an argument: -{name}")
                value = args[i]
            if kind == "int":
                if not value.isdigit():
                    raise FlagError(f'invalid value "{value}" for flag -{name}: parse error')
                flags[name] = int(value)
            else:
                flags[name] = value
        i += 1
    return flags, args[i:]


# ---------------------------------------------------------------------------------------------
# daemon connection


def connect_error_status():
    # cliconndiag: fixTailscaledConnectError, Linux with systemctl on PATH
    return (
        "failed to connect to local tailscaled; it doesn't appear to be running"
        " (sudo systemctl start tailscaled ?)"
    )


def connect_error_localapi(path):
    # client/local: doLocalRequestNiceError with tailscaledConnectHint() on systemd
    return (
        f"Failed to connect to local Tailscale daemon for {path}; systemd tailscaled.service"
        f" not running. Error: dial unix {SOCK}: connect: no such file or directory"
    )


def need_daemon(ctx, path=None):
    if not ctx.st["tailscale"]["daemon"]:
        raise fs.fail(connect_error_localapi(path) if path else connect_error_status())


def access_denied(ctx, what):
    """LocalAPI 403 as the CLI prints it for a non-root caller (cli.go RunWithContext)."""
    msg = f"Access denied: {what}"
    if not ctx.is_root:
        msg += (
            f"\n\nUse 'sudo tailscale {' '.join(ctx.args)}'.\n"
            "To not require root, use 'sudo tailscale set --operator=$USER' once."
        )
    return msg


def may_write(ctx):
    ts = ctx.st["tailscale"]
    return ctx.is_root or (ts.get("operator") and ts["operator"] == ctx.caller)


# ---------------------------------------------------------------------------------------------
# status


ZERO_TIME = "0001-01-01T00:00:00Z"


def self_caps(ts):
    caps = {
        "https://tailscale.com/cap/file-sharing": None,
        "https://tailscale.com/cap/is-admin": None,
        "https://tailscale.com/cap/ssh": None,
        "probe-udp-lifetime": None,
        "ssh-behavior-v1": None,
        "ssh-env-vars": None,
    }
    if ts.get("https"):
        caps["https"] = None
        if ts.get("funnel"):
            caps["funnel"] = None
            caps["https://tailscale.com/cap/funnel-ports?ports=443,8443,10000"] = None
    return {k: caps[k] for k in sorted(caps)}


def ts_version(ts):
    v = ts["version"]
    return f"{v}-t6a5f2c8e1-g0f9d6c7b2"


def status_obj(st):
    ts = st["tailscale"]
    state = ts["backend_state"]
    dns = fs.ts_dns_name(st)
    logged_in = state in ("Running", "Starting", "Stopped")
    ips = [ts["ip4"], ts["ip6"]]
    if logged_in:
        caps = self_caps(ts)
        me = {
            "ID": "nXb7sD3fQr11CNTRL",
            "PublicKey": "nodekey:5b3f0e8b5c1f2a9d4e7c6b0a1f2e3d4c5b6a79880f1e2d3c4b5a69788f7e6d5c",
            "HostName": ts["hostname"],
            "DNSName": dns,
            "OS": "linux",
            "UserID": 6541234567890123,
            "TailscaleIPs": ips,
            "AllowedIPs": [ts["ip4"] + "/32", ts["ip6"] + "/128"],
            "Addrs": ["203.0.113.7:41641", "10.0.2.15:41641"],
            "CurAddr": "",
            "Relay": "fra",
            "RxBytes": 0,
            "TxBytes": 0,
            "Created": "2025-11-02T09:14:27.123456789Z",
            "LastWrite": ZERO_TIME,
            "LastSeen": ZERO_TIME,
            "LastHandshake": ZERO_TIME,
            "Online": state == "Running",
            "ExitNode": False,
            "ExitNodeOption": False,
            "Active": False,
            "PeerAPIURL": [f"http://{ts['ip4']}:34567", f"http://[{ts['ip6']}]:34567"],
            "TaildropTarget": 0,
            "NoFileSharingReason": "",
            "Capabilities": list(caps),
            "CapMap": caps,
            "InNetworkMap": True,
            "InMagicSock": False,
            "InEngine": False,
            "KeyExpiry": "2026-05-01T09:14:27Z",
        }
        peer = {
            "ID": "nQ2w3e4r5t11CNTRL",
            "PublicKey": "nodekey:9a8b7c6d5e4f30211f2e3d4c5b6a79880a1b2c3d4e5f60718293a4b5c6d7e8f9",
            "HostName": "laptop",
            "DNSName": f"laptop.{ts['tailnet']}.",
            "OS": "macOS",
            "UserID": 6541234567890123,
            "TailscaleIPs": ["100.88.77.66", "fd7a:115c:a1e0::5801:4d42"],
            "AllowedIPs": ["100.88.77.66/32", "fd7a:115c:a1e0::5801:4d42/128"],
            "Addrs": None,
            "CurAddr": "",
            "Relay": "fra",
            "RxBytes": 0,
            "TxBytes": 0,
            "Created": "2025-09-14T18:02:11.5Z",
            "LastWrite": ZERO_TIME,
            "LastSeen": "2026-01-20T08:41:00Z",
            "LastHandshake": ZERO_TIME,
            "Online": False,
            "ExitNode": False,
            "ExitNodeOption": False,
            "Active": False,
            "PeerAPIURL": ["http://100.88.77.66:51515"],
            "TaildropTarget": 3,
            "NoFileSharingReason": "",
            "InNetworkMap": True,
            "InMagicSock": True,
            "InEngine": False,
            "KeyExpiry": "2026-03-14T18:02:11Z",
        }
        health = ["Tailscale is stopped."] if state == "Stopped" else []
        obj = {
            "Version": ts_version(ts),
            "TUN": True,
            "BackendState": state,
            "HaveNodeKey": True,
            "AuthURL": "",
            "TailscaleIPs": ips,
            "Self": me,
            "Health": health,
            "MagicDNSSuffix": ts["tailnet"],
            "CurrentTailnet": {
                "Name": "user@example.com",
                "MagicDNSSuffix": ts["tailnet"],
                "MagicDNSEnabled": True,
            },
            "CertDomains": [dns.rstrip(".")] if ts.get("https") else None,
            "Peer": {peer["PublicKey"]: peer},
            "User": {
                "6541234567890123": {
                    "ID": 6541234567890123,
                    "LoginName": "user@example.com",
                    "DisplayName": "Example User",
                    "ProfilePicURL": "",
                }
            },
            "ClientVersion": None,
        }
        return obj
    me = {
        "ID": "",
        "PublicKey": "nodekey:0000000000000000000000000000000000000000000000000000000000000000",
        "HostName": ts["hostname"],
        "DNSName": "",
        "OS": "",
        "UserID": 0,
        "TailscaleIPs": None,
        "AllowedIPs": None,
        "Addrs": ["203.0.113.7:41641", "10.0.2.15:41641"],
        "CurAddr": "",
        "Relay": "",
        "RxBytes": 0,
        "TxBytes": 0,
        "Created": ZERO_TIME,
        "LastWrite": ZERO_TIME,
        "LastSeen": ZERO_TIME,
        "LastHandshake": ZERO_TIME,
        "Online": False,
        "ExitNode": False,
        "ExitNodeOption": False,
        "Active": False,
        "PeerAPIURL": None,
        "TaildropTarget": 0,
        "NoFileSharingReason": "",
        "InNetworkMap": False,
        "InMagicSock": False,
        "InEngine": False,
    }
    health = {
        "NeedsLogin": ["You are logged out."],
        "NeedsMachineAuth": ["Machine is not yet approved by tailnet admin."],
    }.get(state, [])
    return {
        "Version": ts_version(ts),
        "TUN": True,
        "BackendState": state,
        "HaveNodeKey": state != "NoState",
        "AuthURL": ts.get("auth_url", ""),
        "TailscaleIPs": None,
        "Self": me,
        "Health": health,
        "MagicDNSSuffix": "",
        "CurrentTailnet": None,
        "CertDomains": None,
        "Peer": None,
        "User": None,
        "ClientVersion": None,
    }


def running_or_starting(st):
    """status.go isRunningOrStarting."""
    ts = st["tailscale"]
    state = ts["backend_state"]
    if state in ("Running", "Starting"):
        return None
    if state == "Stopped":
        return "Tailscale is stopped."
    if state == "NeedsLogin":
        s = "Logged out."
        if ts.get("auth_url"):
            s += f"\nLog in at: {ts['auth_url']}"
        return s
    if state == "NeedsMachineAuth":
        return "Machine is not yet approved by tailnet admin."
    return f"unexpected state: {state}"


def cmd_status(ctx, args):
    try:
        flags, _ = parse_flags(
            args,
            {
                "json": "bool",
                "peers": "bool",
                "active": "bool",
                "self": "bool",
                "web": "bool",
                "browser": "bool",
                "listen": "str",
                "header": "bool",
            },
        )
    except FlagError as e:
        raise fs.fail(str(e), 2) from None
    need_daemon(ctx)
    st = ctx.st
    if flags.get("json"):
        fs.out(fs.go_json(status_obj(st)))
        return 0
    desc = running_or_starting(st)
    if desc:
        fs.out(desc)
        return 1
    ts = st["tailscale"]
    fs.out(f"{ts['ip4']:<15} {ts['hostname']:<24} user@        linux   -")
    fs.out("100.88.77.66    laptop                   user@        macOS   offline")
    return 0


# ---------------------------------------------------------------------------------------------
# serve / funnel


def serve_config(st):
    return st["tailscale"].setdefault("serve_config", {}) or {}


def serve_json(st):
    sc = st["tailscale"].get("serve_config") or {}
    if not sc and st["tailscale"].get("empty_style") == "null":
        return "null"
    return fs.go_json(fs.go_serve_config(sc))


def expand_target(target, default_scheme="http"):
    """ipn.ExpandProxyTargetValue."""
    if target == "":
        raise ValueError("empty target")
    if target.isdigit() and 0 <= int(target) <= 65535:
        return f"{default_scheme}://127.0.0.1:{int(target)}"
    has_scheme = "://" in target
    if not has_scheme:
        target = default_scheme + "://" + target
    scheme, _, rest = target.partition("://")
    if scheme not in ("http", "https", "https+insecure"):
        raise ValueError(
            "must be a URL starting with one of the supported schemes: [http https https+insecure]"
        )
    hostport, slash, path = rest.partition("/")
    if hostport.startswith("["):
        host, _, port = hostport[1:].partition("]")
        port = port[1:] if port.startswith(":") else ""
    else:
        host, _, port = hostport.partition(":")
    if host in ("localhost", "127.0.0.1", "::1"):
        if not port.isdigit() or int(port) == 0 or int(port) > 65535:
            raise ValueError(f'invalid port "{port}"')
    elif not has_scheme:
        raise ValueError(f'non-localhost target "{target}" must include a scheme')
    if port:
        if not port.isdigit():
            raise ValueError(f'invalid port "{port}"')
        port = str(int(port))
        hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"{scheme}://{hostport}{slash}{path}"


def srv_type_port(flags):
    kinds = [(k, flags[k]) for k in ("https", "http", "tcp", "tls-terminated-tcp") if flags.get(k)]
    if len(kinds) > 1:
        raise ValueError("cannot serve multiple types for a single mount point")
    if not kinds:
        return "https", 443
    k, port = kinds[0]
    if port > 65535:
        raise ValueError(f"port number {port} is too high for {k} flag")
    return k, port


def legacy_error(sub, args):
    """isLegacyInvocation: the pre-1.52 syntax (`serve https:443 / ...`, `funnel 443 on`)."""
    if sub == "funnel":
        return len(args) == 2 and args[0].isdigit() and args[1] in ("on", "off")
    turn_off = len(args) > 1 and args[-1] == "off"
    a = args[:-1] if turn_off else args
    if not a:
        return False
    src, sep, _ = a[0].partition(":")
    if not sep and src not in ("https", "http"):
        return False
    want = {"https": 3, "http": 3, "tcp": 2, "tls-terminated-tcp": 2}.get(src)
    if want is None:
        return False
    return len(a) == want or (turn_off and len(a) == want - 1)


def feature_not_enabled(ctx, feature):
    """enableFeatureInteractive when control says the feature is off: text + URL, exit 0."""
    fs.out(
        f"\n{feature.capitalize()} is not enabled on your tailnet.\nTo enable, visit:"
        f"\n\n         https://login.tailscale.com/f/{feature}?node=nXb7sD3fQr11CNTRL\n"
    )
    raise fs.Exit(0)


def message_for_port(sc, dns, kind, port, sub, funnel_on):
    hp = f"{dns}:{port}"
    scheme = "http" if kind == "http" else "https"
    port_part = (
        ""
        if (scheme == "http" and port == 80) or (scheme == "https" and port == 443)
        else f":{port}"
    )
    lines = ["Available on the internet:" if funnel_on else "Available within your tailnet:", ""]
    web = (sc.get("Web") or {}).get(hp)
    tcp = (sc.get("TCP") or {}).get(str(port))
    text = "\n".join(lines) + "\n"
    if web:
        mounts = sorted(web.get("Handlers", {}), key=len)
        for m in mounts:
            h = web["Handlers"][m]
            if h.get("Path"):
                t, d = "path", h["Path"]
            elif h.get("Proxy"):
                t, d = "proxy", h["Proxy"]
            elif h.get("Text"):
                t, d = "text", '"' + h["Text"][:20] + '"'
            else:
                t, d = "", ""
            text += f"{scheme}://{dns}{port_part}{m}\n"
            text += f"|-- {t:<5} {d}\n\n"
    elif tcp:
        status = "TLS terminated" if tcp.get("TerminateTLS") else "TLS over TCP"
        text += f"|-- tcp://{dns}:{port} ({status})\n"
        text += f"|--> tcp://{tcp.get('TCPForward', '')}\n\n"
    name = sub.capitalize()
    text += f"{name} started and running in the background.\n"
    text += f"To disable the proxy, run: tailscale {sub} --{kind}={port} off"
    return text


def find_config(sc, port):
    """ServeConfig.FindConfig: (config, is_foreground) serving `port`."""
    for _sid, fg in sorted((sc.get("Foreground") or {}).items()):
        if str(port) in (fg.get("TCP") or {}):
            return fg, True
    if str(port) in (sc.get("TCP") or {}):
        return sc, False
    return None, False


def tcp_kind(h):
    if h.get("HTTP"):
        return "http"
    if h.get("HTTPS"):
        return "https"
    if h.get("TerminateTLS"):
        return "tls-terminated-tcp"
    if h.get("TCPForward"):
        return "tcp"
    return "unknownServeType"


def cmd_serve(ctx, sub, args):
    st = ctx.st
    ts = st["tailscale"]
    # subcommands: status, reset (ffcli: the first argument picks a subcommand)
    if args and args[0] == "status":
        try:
            flags, _ = parse_flags(args[1:], {"json": "bool"})
        except FlagError as e:
            raise fs.fail(str(e), 2) from None
        need_daemon(ctx, "/localapi/v0/serve-config")
        if flags.get("json"):
            fs.out(serve_json(st))
            return 0
        sc = ts.get("serve_config") or {}
        if not (sc.get("TCP") or sc.get("Web") or sc.get("AllowFunnel")):
            fs.out("No serve config")
            return 0
        for hp in sorted(sc.get("Web") or {}):
            host, _, port = hp.rpartition(":")
            scheme = "http" if (sc.get("TCP") or {}).get(port, {}).get("HTTP") else "https"
            url = f"{scheme}://{host}" + ("" if port in ("443", "80") else f":{port}")
            tag = "(Funnel on)" if (sc.get("AllowFunnel") or {}).get(hp) else "(tailnet only)"
            fs.out(f"{url} {tag}")
            for m, h in sorted(sc["Web"][hp].get("Handlers", {}).items()):
                kind = "proxy" if h.get("Proxy") else ("path" if h.get("Path") else "text")
                fs.out(f"|-- {m} {kind} {h.get('Proxy') or h.get('Path') or h.get('Text')}")
            fs.out()
        return 0
    if args and args[0] == "reset":
        if ts["daemon"] is False:
            raise fs.fail(
                "sending serve config: " + connect_error_localapi("/localapi/v0/serve-config")
            )
        if not may_write(ctx):
            raise fs.fail("sending serve config: " + access_denied(ctx, "serve config denied"))
        ts["serve_config"] = {}
        ctx.host.mark()
        return 0
    if args == ["set-raw"]:
        import json

        need_daemon(ctx, "/localapi/v0/serve-config")
        try:
            new = json.loads(sys.stdin.read() or "null")
        except ValueError as e:
            raise fs.fail(f"invalid JSON: {e}") from None
        if not may_write(ctx):
            raise fs.fail("sending serve config: " + access_denied(ctx, "serve config denied"))
        ts["serve_config"] = new or {}
        ctx.host.mark()
        return 0

    spec = {
        "bg": "bool",
        "set-path": "str",
        "https": "int",
        "tcp": "int",
        "tls-terminated-tcp": "int",
        "service": "str",
        "yes": "bool",
        "tun": "bool",
    }
    if sub == "serve":
        spec["http"] = "int"
    try:
        flags, rest = parse_flags(args, spec)
    except FlagError as e:
        raise fs.fail(str(e), 2) from None
    if flags.get("service") or flags.get("tun"):
        raise fs.fail("fakehost: tailscale serve --service/--tun is not simulated", 2)
    help_line = HELP_SERVE.format(sub)
    if legacy_error(sub, rest):
        fs.err(
            "Error: the CLI for serve and funnel has changed.\n"
            "Please see https://tailscale.com/kb/1242/tailscale-serve for more information."
        )
        raise fs.fail(help_line)
    if not rest:
        fs.err(
            f"USAGE\n  tailscale {sub} <target>\n  tailscale {sub} status [--json]\n  tailscale {sub} reset"
        )
        return 0
    if len(rest) > 2:
        fs.err(f"Error: invalid number of arguments ({len(rest)})")
        raise fs.fail(help_line)
    turn_off = rest[-1] == "off"
    if len(rest) == 2 and not turn_off:
        fs.err("Error: invalid argument format")
        raise fs.fail(help_line)
    funnel = sub == "funnel"
    dns = fs.ts_dns_name(st).rstrip(".")
    if funnel:
        # verifyFunnelEnabled(ctx, 443): status first, then the funnel capability
        need_daemon(ctx)
        desc = running_or_starting(st)
        if desc:
            raise fs.fail(desc)
        if not (ts.get("https") and ts.get("funnel")):
            feature_not_enabled(ctx, "funnel")
    set_path = flags.get("set-path", "")
    mount = "/" + set_path.lstrip("/") if set_path else "/"
    try:
        kind, port = srv_type_port(flags)
    except ValueError as e:
        fs.err(f"error: {e}\n")
        raise fs.fail(help_line) from None
    if not ts["daemon"]:
        raise fs.fail(
            "error getting serve config: getting serve config: "
            + connect_error_localapi("/localapi/v0/serve-config")
        )
    desc = running_or_starting(st)
    if desc:
        raise fs.fail(desc)
    if not turn_off and kind == "https" and not ts.get("https"):
        feature_not_enabled(ctx, "serve")
    bg = flags.get("bg", False)
    if not bg and not turn_off:
        raise fs.fail(
            "fakehost: foreground `tailscale serve` (it blocks until Ctrl+C) is not simulated;"
            " use --bg, or FakeHost.set_serve_config with a Foreground entry",
            2,
        )
    import copy

    sc = copy.deepcopy(ts.get("serve_config") or {})
    hp = f"{dns}:{port}"
    msg = ""
    if turn_off:
        # unsetServe -> removeWebServe / removeTCPServe
        tcp = sc.get("TCP") or {}
        if kind in ("https", "http"):
            web = (sc.get("Web") or {}).get(hp)
            if tcp.get(str(port), {}).get("TCPForward"):
                fs.err(
                    "error: failed to remove web serve: cannot remove web handler; currently serving TCP\n"
                )
                raise fs.fail(help_line)
            if set_path:
                mounts = [mount] if web and mount in web.get("Handlers", {}) else []
            else:
                mounts = list(web.get("Handlers", {})) if web else []
            if not mounts:
                fs.err("error: failed to remove web serve: handler does not exist\n")
                raise fs.fail(help_line)
            for m in mounts:
                del web["Handlers"][m]
            if not web["Handlers"]:
                del sc["Web"][hp]
                tcp.pop(str(port), None)
                (sc.get("AllowFunnel") or {}).pop(hp, None)
        else:
            if str(port) not in tcp:
                fs.err("error: failed to remove TCP serve: serve config does not exist\n")
                raise fs.fail(help_line)
            del tcp[str(port)]
    else:
        target = rest[0]
        cfg, is_fg = find_config(sc, port)
        if cfg is not None:
            if is_fg:
                raise fs.fail("foreground already exists under this port")
            existing = tcp_kind(cfg["TCP"][str(port)])
            if existing != kind:
                raise fs.fail(
                    f'want to serve "{kind}" but port is already serving "{existing}" for "machine"'
                )
        if kind in ("https", "http"):
            if target.startswith("text:"):
                if not target[5:]:
                    fs.err(
                        "error: failed apply web serve: unable to serve; text cannot be an empty string\n"
                    )
                    raise fs.fail(help_line)
                handler = {"Text": target[5:]}
            elif target.startswith("/"):
                handler = {"Path": os.path.normpath(target)}
            else:
                try:
                    handler = {"Proxy": expand_target(target)}
                except ValueError as e:
                    fs.err(f"error: failed apply web serve: {e}\n")
                    raise fs.fail(help_line) from None
            sc.setdefault("TCP", {})[str(port)] = (
                {"HTTPS": True} if kind == "https" else {"HTTP": True}
            )
            handlers = sc.setdefault("Web", {}).setdefault(hp, {}).setdefault("Handlers", {})
            handlers[mount] = handler
            for k in list(handlers):
                if k != mount and k.rstrip("/") == mount.rstrip("/"):
                    del handlers[k]
        else:
            t = target if target.isdigit() else target.split("://")[-1]
            if t.isdigit():
                t = f"127.0.0.1:{t}"
            entry = {"TCPForward": t}
            if kind == "tls-terminated-tcp":
                entry["TerminateTLS"] = dns
            sc.setdefault("TCP", {})[str(port)] = entry
        # applyFunnel
        allow = sc.get("AllowFunnel") or {}
        if funnel:
            allow[hp] = True
            sc["AllowFunnel"] = allow
        elif hp in allow:
            # (sic: the CLI formats host and host:port)
            fs.err(f"Removing Funnel for {dns}:{hp}")
            del allow[hp]
        msg = message_for_port(sc, dns, kind, port, sub, funnel)
    for key in ("TCP", "Web", "AllowFunnel"):
        if key in sc and not sc[key]:
            del sc[key]
    # SetServeConfig: the LocalAPI checks write access here, after all local validation
    if not may_write(ctx):
        raise fs.fail("sending serve config: " + access_denied(ctx, "serve config denied"))
    ts["serve_config"] = sc
    ctx.host.mark()
    if msg:
        fs.out(msg)
    return 0


# ---------------------------------------------------------------------------------------------
# prefs


def prefs_obj(st):
    ts = st["tailscale"]
    logged_out = ts["backend_state"] == "NeedsLogin"
    p = {
        "ControlURL": "https://controlplane.tailscale.com",
        "RouteAll": False,
        "ExitNodeID": "",
        "ExitNodeIP": "",
        "InternalExitNodePrior": "",
        "ExitNodeAllowLANAccess": False,
        "CorpDNS": True,
        "RunSSH": False,
        "RunWebClient": False,
        "WantRunning": ts["backend_state"] != "Stopped",
        "LoggedOut": logged_out,
        "ShieldsUp": False,
        "AdvertiseTags": None,
        "Hostname": "",
        "NotepadURLs": False,
        "AdvertiseRoutes": None,
        "AdvertiseServices": None,
        "NoSNAT": False,
        "NoStatefulFiltering": False,
        "NetfilterMode": 2,
    }
    if ts.get("operator"):
        p["OperatorUser"] = ts["operator"]
    p.update(
        {
            "AutoUpdate": {"Check": True, "Apply": False},
            "AppConnector": {"Advertise": False},
            "PostureChecking": False,
            "NetfilterKind": "",
            "DriveShares": None,
            "AllowSingleHosts": True,
            "Config": {
                "PrivateNodeKey": "privkey:0000000000000000000000000000000000000000000000000000000000000000",
                "OldPrivateNodeKey": "privkey:0000000000000000000000000000000000000000000000000000000000000000",
                "UserProfile": {
                    "ID": 0 if logged_out else 6541234567890123,
                    "LoginName": "" if logged_out else "user@example.com",
                    "DisplayName": "" if logged_out else "Example User",
                    "ProfilePicURL": "",
                },
                "NetworkLockKey": "nlpriv:0000000000000000000000000000000000000000000000000000000000000000",
                "NodeID": "" if logged_out else "nXb7sD3fQr11CNTRL",
                "AttestationKey": None,
                "DisallowedTKAStateIDs": None,
            },
        }
    )
    return p


SET_FLAGS = {
    "operator": "str",
    "hostname": "str",
    "ssh": "bool",
    "accept-routes": "bool",
    "accept-dns": "bool",
    "shields-up": "bool",
    "exit-node": "str",
    "exit-node-allow-lan-access": "bool",
    "advertise-exit-node": "bool",
    "advertise-routes": "str",
    "webclient": "bool",
    "auto-update": "bool",
    "report-posture": "bool",
    "update-check": "bool",
    "nickname": "str",
}


def cmd_set(ctx, args):
    try:
        flags, rest = parse_flags(args, SET_FLAGS)
    except FlagError as e:
        raise fs.fail(str(e), 2) from None
    if rest:
        raise fs.fail(f"too many non-flag arguments: {rest!r}")
    need_daemon(ctx, "/localapi/v0/prefs")
    if not ctx.is_root:
        raise fs.fail(access_denied(ctx, "prefs write access denied"))
    if "operator" in flags:
        ctx.st["tailscale"]["operator"] = flags["operator"] or None
        ctx.host.mark()
    return 0


def cmd_get(ctx, args):
    if fs.version_tuple(ctx.st["tailscale"]["version"]) < (1, 100):
        raise fs.fail("tailscale: unknown subcommand: get")
    if not args:
        raise fs.fail("tailscale get: missing setting name")
    need_daemon(ctx, "/localapi/v0/prefs")
    if args[0] == "operator":
        fs.out(ctx.st["tailscale"].get("operator") or "")
        return 0
    raise fs.fail(f"unknown setting {args[0]!r}")


def cmd_debug(ctx, args):
    if args[:1] == ["prefs"]:
        need_daemon(ctx, "/localapi/v0/prefs")
        p = prefs_obj(ctx.st)
        if "--pretty" in args[1:] or "-pretty" in args[1:]:
            op = p.get("OperatorUser", "")
            fs.out(f"Prefs{{ra=false dns=true want=true op={op!r}}}")
        else:
            fs.out(fs.go_json(p, "\t"))
        return 0
    raise fs.fail(f"fakehost: tailscale debug {' '.join(args)} is not simulated", 2)


def cmd_version(ctx, args):
    v = ctx.st["tailscale"]["version"]
    if "--json" in args:
        import json

        fs.out(
            json.dumps(
                {"majorMinorPatch": v, "short": v, "long": ts_version(ctx.st["tailscale"])},
                indent=2,
            )
        )
        return 0
    fs.out(v)
    fs.out("  tailscale commit: 6a5f2c8e1b0d4f3a2c9e8b7a6d5c4b3a2f1e0d9c")
    fs.out("  other commit: 0f9d6c7b2a1e3d4c5b6a7980f1e2d3c4b5a69788")
    fs.out("  go version: go1.25.3")
    return 0


# ---------------------------------------------------------------------------------------------


def strip_global(args):
    """Root flags: --socket=PATH."""
    out = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("--socket", "-socket") and not out:
            i += 2
            continue
        if (a.startswith("--socket=") or a.startswith("-socket=")) and not out:
            i += 1
            continue
        out.append(a)
        i += 1
    return out


def classify(args):
    args = strip_global(args)
    if not args:
        return False, None
    cmd, rest = args[0], args[1:]
    if cmd in ("serve", "funnel"):
        if rest[:1] == ["status"] or not rest:
            return False, None
        if rest[:1] == ["reset"]:
            return (
                True,
                "sending serve config: 500 Internal Server Error: context deadline exceeded",
            )
        return True, (
            "Another client is changing the serve config; please try again.\n"
            "sending serve config: Preconditions failed: etag mismatch"
        )
    if cmd == "set":
        return True, (
            "Failed to connect to local Tailscale daemon for /localapi/v0/prefs; not running?"
            f" Error: dial unix {SOCK}: connect: connection refused"
        )
    return False, None


def main(ctx):
    args = strip_global(ctx.args)
    if args in (["-V"], ["--version"]):
        args = ["version"]
    if not args:
        fs.err("USAGE\n  tailscale [flags] <subcommand> [command flags]")
        return 0
    cmd, rest = args[0], args[1:]
    if cmd == "version":
        return cmd_version(ctx, rest)
    if cmd == "status":
        return cmd_status(ctx, rest)
    if cmd in ("serve", "funnel"):
        return cmd_serve(ctx, cmd, rest)
    if cmd == "set":
        return cmd_set(ctx, rest)
    if cmd == "get":
        return cmd_get(ctx, rest)
    if cmd == "debug":
        return cmd_debug(ctx, rest)
    raise fs.fail(f"tailscale: unknown subcommand: {cmd}")
