"""`reconciler doctor`: walk, per profile, the chain a browser request takes, and stop at the
first broken link with the reason and the exact fix.

Read-only: one probe session (the plan's probes and the doctor's own, run at once and batched as
plan's are), then, only for a unit that keeps restarting, its last journal lines. The chain is
judged by the pure `diagnose`; the links are in docs/doctor.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from reconciler.app.context import EXIT_FAILED, EXIT_OK, AppContext, Failed
from reconciler.app.specs import load
from reconciler.core.untrusted import printable, shell_line
from reconciler.frozen import frozen

if TYPE_CHECKING:
    from reconciler.core.action import Action
    from reconciler.core.host import HostContext
    from reconciler.core.plan import Plan
    from reconciler.core.probe import Facts, Probe
    from reconciler.facts.files import ExposedEntriesProbe, SecretEnvProbe
    from reconciler.facts.gateway_rpc import GatewayHealthProbe
    from reconciler.shell.runner import ReadOnlyRunner
    from reconciler.spec.model import Profile, ServeEntry, Spec

DoctorFormat = Literal["human", "json"]

JOURNAL_LINES = 10


@frozen
class Link:
    """One checked link: fine, or broken with why and the exact fix."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    log: tuple[str, ...] = ()  # the unit's last journal lines, for a restart loop


@frozen
class Diagnosis:
    """One profile's chain, checked up to its first broken link."""

    profile: str
    port: int
    url: str | None  # what users open (None: not served over Tailscale)
    links: tuple[Link, ...]
    findings: tuple[Link, ...] = ()  # things to act on that do not break the chain

    @property
    def healthy(self) -> bool:
        return all(link.ok for link in self.links)

    @property
    def unchecked(self) -> tuple[str, ...]:
        """The links after the broken one (not checked: the chain is already broken)."""
        if self.healthy:
            return ()
        return LINKS[LINKS.index(self.links[-1].name) + 1 :]


@frozen
class DoctorRequest:
    """What `reconciler doctor` was asked for."""

    spec_path: Path
    profile: str | None = None
    fmt: DoctorFormat = "human"
    host_check: bool = True


@frozen
class Words:
    """How to write a fix for the person running doctor: as the right user, with sudo when
    they are not root."""

    spec_path: str
    user: str
    uid: int
    as_user: bool  # doctor runs as the spec's user
    as_root: bool

    def user_cmd(self, *argv: str) -> str:
        """A command of the user's session (their systemd manager, their journal)."""
        if self.as_user:
            return shell_line(argv)
        return shell_line(("sudo", "-u", self.user, f"XDG_RUNTIME_DIR=/run/user/{self.uid}", *argv))

    def root_cmd(self, *argv: str) -> str:
        return shell_line(argv if self.as_root else ("sudo", *argv))

    def apply(self) -> str:
        return shell_line(("reconciler", "apply", self.spec_path))


@frozen
class Evidence:
    """What the probes said about one profile (and the host), for the pure checks."""

    spec: Spec
    profile: Profile
    unit: str
    serve: ServeEntry | None
    facts: Facts
    plan: Plan
    health: GatewayHealthProbe | None
    gateway_program: str | None
    journal: tuple[str, ...] = ()
    journal_detail: str = ""
    findings: tuple[Link, ...] = ()  # e.g. pending pairing requests
    token: SecretEnvProbe | None = None  # the profile's gateway.env (auth: token)
    credentials: ExposedEntriesProbe | None = None  # what in <state>/credentials others reach

    def actions(self, *parts: str) -> list[Action]:
        from reconciler.gateway.paths import address

        wanted = {address(self.profile.name, p) for p in parts}
        return [a for a in self.plan.actions if a.address in wanted]


def doctor(ctx: AppContext, request: DoctorRequest) -> int:
    """Check every profile (or `request.profile`); print; 0 when all are healthy, else 1."""
    from reconciler.app.planning import host_for

    spec = load(ctx, request.spec_path)
    profiles = _chosen_profiles(spec, request.profile)
    host = host_for(ctx, spec, request.host_check)
    if host.user is None:
        raise Failed(f"user {spec.host.user!r} does not exist on this host")
    if not host.can_act_for_user:
        raise Failed(
            f"doctor reads {spec.host.user}'s services and journal: run it as "
            f"{spec.host.user} or as root (we are {host.invoker.name})"
        )
    runner = ctx.make_runner(host, False)
    started = ctx.monotonic()
    now_ms = int(ctx.now().timestamp() * 1000)
    diagnoses = examine(spec, host, runner, profiles, str(request.spec_path), now_ms)
    elapsed = ctx.monotonic() - started
    from reconciler.core.secrets import mask_secrets

    if request.fmt == "json":
        ctx.echo(mask_secrets(render_json(diagnoses)))
    else:
        ctx.echo(mask_secrets(render_human(diagnoses, elapsed, len(runner.log))), nl=False)
    return EXIT_OK if all(d.healthy for d in diagnoses) else EXIT_FAILED


def _chosen_profiles(spec: Spec, name: str | None) -> tuple[Profile, ...]:
    if name is None:
        return spec.profiles
    from reconciler.app.specs import profile_named

    return (profile_named(spec, spec.path or "the spec", name, "--profile"),)


def examine(
    spec: Spec,
    host: HostContext,
    runner: ReadOnlyRunner,
    profiles: Sequence[Profile],
    spec_path: str,
    now_ms: int,
) -> list[Diagnosis]:
    """Probe once (plan's probes and the doctor's, at once), then diagnose each profile."""
    from datetime import UTC, datetime

    from reconciler.app.plan_pass import plan_from_facts
    from reconciler.core.probe import ProbeSession
    from reconciler.kinds import all_kinds

    session = ProbeSession(host, runner.run)
    ours = doctor_probes(spec, host, profiles, now_ms)
    rounds: list[Facts] = []

    def collect(probes: Iterable[Probe[Any]]) -> Facts:
        asked = list(probes) if rounds else [*probes, *ours]
        rounds.append(session.collect(asked))
        return rounds[-1]

    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    plan = plan_from_facts(spec, host, all_kinds(), collect, stamp).plan
    words = Words(
        spec_path,
        spec.host.user,
        host.user.uid if host.user else 0,
        host.acting_as_user,
        host.is_root,
    )
    evidence = [
        _evidence(spec, host, p, rounds[0], plan, _pairing(spec, host, p, rounds[0], now_ms, words))
        for p in profiles
    ]
    evidence = _with_journals(evidence, session.collect)
    return [diagnose(e, words) for e in evidence]


def _pairing(
    spec: Spec, host: HostContext, profile: Profile, facts: Facts, now_ms: int, words: Words
) -> tuple[Link, ...]:
    """Pending pairing requests as findings, each with its approve command (never approved
    here: `Disconnected (1008): pairing required` in a browser means one is waiting)."""
    from reconciler.core.probe import ProbeFailed
    from reconciler.facts.devices import DeviceFilesProbe, devices_dir

    try:
        pairing = facts.get(DeviceFilesProbe(devices_dir(spec, host, profile), now_ms))
    except ProbeFailed as exc:
        return (Link("pairing", False, f"pairing requests not readable: {exc}"),)
    approve = ("reconciler", "devices", words.spec_path, profile.name, "approve")
    return tuple(
        Link(
            "pairing",
            False,
            f"pending pairing request {r.request_id} from {r.client()} ({r.platform or '?'}, "
            f"{r.remote_ip or '?'}), expires in {r.remaining_ms(now_ms) // 1000} s",
            shell_line((*approve, r.request_id)),  # the ID is the browser's: quoted
        )
        for r in pairing.pending
    )


def doctor_probes(
    spec: Spec, host: HostContext, profiles: Sequence[Profile], now_ms: int
) -> list[Probe[Any]]:
    """The doctor's own probes, beyond the plan's."""
    from reconciler.facts.devices import DeviceFilesProbe, devices_dir
    from reconciler.facts.listeners import ListenersProbe
    from reconciler.facts.systemd import (
        LingerProbe,
        SystemdProbe,
        UnitRestartsProbe,
        UnitStatusProbe,
    )
    from reconciler.facts.tailscale import ServeStatusProbe, TailscaleStatusProbe

    names = _names(spec)
    probes: list[Probe[Any]] = [
        TailscaleStatusProbe(),
        ServeStatusProbe(),
        SystemdProbe(),
        LingerProbe(spec.host.user),
        ListenersProbe(tuple(sorted({p.port for p in spec.profiles}))),
    ]
    for profile in profiles:
        unit = names.unit(profile.name)
        probes += [UnitStatusProbe(unit), UnitRestartsProbe(unit)]
        probes.append(DeviceFilesProbe(devices_dir(spec, host, profile), now_ms))
        health = health_probe(spec, host, profile)
        if health is not None:
            probes.append(health)
        token = _token_probe(spec, host, profile)
        if token is not None:
            probes.append(token)
        probes.append(_credentials_probe(spec, host, profile))
    return probes


def _token_probe(spec: Spec, host: HostContext, profile: Profile) -> SecretEnvProbe | None:
    """The profile's gateway.env (auth: token, and every openclaw profile): its mode, never
    its value."""
    from reconciler.facts.profile_files import token_probe
    from reconciler.gateway.paths import profile_paths, uses_token_file

    if not uses_token_file(spec, profile):
        return None
    return token_probe(spec, profile_paths(spec, profile, host))


def _credentials_probe(spec: Spec, host: HostContext, profile: Profile) -> ExposedEntriesProbe:
    """What in the profile's `credentials/` (channel logins: WhatsApp, Telegram ...) group or
    others may read or change, file by file."""
    from reconciler.facts.files import ExposedEntriesProbe
    from reconciler.gateway.paths import profile_paths

    return ExposedEntriesProbe(profile_paths(spec, profile, host).credentials)


def _names(spec: Spec) -> Any:
    from reconciler.spec.naming import product_names

    return product_names(spec.product)


def health_probe(spec: Spec, host: HostContext, profile: Profile) -> GatewayHealthProbe | None:
    """`<cmd> gateway health --json` with the profile's environment (None: no gateway CLI)."""
    from reconciler.facts.gateway_rpc import GatewayHealthProbe, gateway_call

    call = gateway_call(spec, host, profile)
    if call is None:
        return None
    return GatewayHealthProbe(call.program, call.port, call.env, call.token_file)


def _evidence(
    spec: Spec,
    host: HostContext,
    profile: Profile,
    facts: Facts,
    plan: Plan,
    findings: tuple[Link, ...],
) -> Evidence:
    from reconciler.facts.programs import locate

    serve = None
    if spec.tailscale is not None:
        serve = next((e for e in spec.tailscale.serve if e.profile == profile.name), None)
    program = locate(spec.runtime.gateway.command or _names(spec).command, host)
    return Evidence(
        spec,
        profile,
        _names(spec).unit(profile.name),
        serve,
        facts,
        plan,
        health_probe(spec, host, profile),
        program,
        findings=findings,
        token=_token_probe(spec, host, profile),
        credentials=_credentials_probe(spec, host, profile),
    )


def _with_journals(
    evidence: list[Evidence], collect: Callable[[Iterable[Probe[Any]]], Facts]
) -> list[Evidence]:
    """A second, small round: the journal of each unit that keeps restarting (and only those)."""
    from dataclasses import replace

    from reconciler.facts.systemd import JournalTailProbe

    looping = [e for e in evidence if _restart_loop(e) is not None]
    if not looping:
        return evidence
    facts = collect([JournalTailProbe(e.unit, JOURNAL_LINES) for e in looping])
    out = []
    for e in evidence:
        if e in looping:
            tail = facts.get(JournalTailProbe(e.unit, JOURNAL_LINES))
            e = replace(e, journal=tail.lines, journal_detail=tail.detail)
        out.append(e)
    return out


# --- the chain (pure) -------------------------------------------------------------------------

Check = Callable[["Evidence", Words], Link | None]
# Every link of a profile's chain, in the order a request meets them (docs/doctor.md): each
# check registers itself under its link's name, so names and checks are one list.
_CHAIN: list[tuple[str, Check]] = []


def chain_link(name: str) -> Callable[[Check], Check]:
    """Decorator: this check is the next link of the chain, called `name`."""

    def add(check: Check) -> Check:
        _CHAIN.append((name, check))
        return check

    return add


def diagnose(evidence: Evidence, words: Words) -> Diagnosis:
    """Pure: check the links in order and stop at the first broken one."""
    links: list[Link] = []
    for name, check in _CHAIN:
        found = check(evidence, words)
        if found is None:  # does not apply to this profile (not served, linger not managed)
            continue
        if found.name != name:
            raise ValueError(f"the {name} check answered for the link {found.name!r}")
        links.append(found)
        if not found.ok:
            break
    return Diagnosis(
        evidence.profile.name,
        evidence.profile.port,
        _url(evidence),
        tuple(links),
        evidence.findings,
    )


def _url(e: Evidence) -> str | None:
    from reconciler.facts.tailscale import TailscaleStatusProbe

    if e.serve is None:
        return None
    status = e.facts.get(TailscaleStatusProbe())
    host = status.dns_name or f"{e.spec.host.name}.<tailnet>.ts.net"
    port = "" if e.serve.https == 443 else f":{e.serve.https}"
    return f"https://{host}{port}/"


@chain_link("tailscaled")
def _tailscaled(e: Evidence, w: Words) -> Link | None:
    from reconciler.facts.tailscale import TailscaleStatusProbe

    if e.serve is None:
        return None
    status = e.facts.get(TailscaleStatusProbe())
    if status.reachability == "not-installed":
        return Link(
            "tailscaled",
            False,
            "tailscale is not installed",
            "install Tailscale: https://tailscale.com/download/linux",
        )
    if status.reachability == "daemon-down":
        return Link(
            "tailscaled",
            False,
            "tailscaled is not running",
            w.root_cmd("systemctl", "enable", "--now", "tailscaled"),
        )
    if status.reachability != "ok":
        return Link("tailscaled", False, status.detail, w.root_cmd("tailscale", "status"))
    if status.backend_state != "Running":
        return Link(
            "tailscaled",
            False,
            f"tailscale is not logged in (BackendState {status.backend_state})",
            w.root_cmd("tailscale", "up"),
        )
    return Link("tailscaled", True, f"running, logged in as {status.dns_name}")


@chain_link("https")
def _https(e: Evidence, w: Words) -> Link | None:
    from reconciler.facts.tailscale import TailscaleStatusProbe

    if e.serve is None:
        return None
    if not e.facts.get(TailscaleStatusProbe()).https_enabled:
        return Link(
            "https",
            False,
            'HTTPS certificates are not enabled on this tailnet (no "https" in Self.CapMap)',
            "enable HTTPS in the Tailscale admin console: https://login.tailscale.com/admin/dns",
        )
    return Link("https", True, "HTTPS certificates enabled")


def _serve_fix(e: Evidence, w: Words) -> str:
    assert e.serve is not None
    direct = w.root_cmd(
        "tailscale", "serve", "--bg", "--yes", f"--https={e.serve.https}", _target(e)
    )
    return f"{w.apply()}  (or by hand: {direct})"


def _target(e: Evidence) -> str:
    from reconciler.facts.tailscale import normalize_target

    assert e.serve is not None
    return normalize_target(e.serve.target or str(e.profile.port))


@chain_link("serve")
def _serve(e: Evidence, w: Words) -> Link | None:
    from reconciler.facts.tailscale import ServeStatusProbe, TailscaleStatusProbe, normalize_target

    if e.serve is None:
        return None
    config = e.facts.get(ServeStatusProbe())
    if config.reachability != "ok":
        return Link("serve", False, config.detail, w.root_cmd("tailscale", "serve", "status"))
    dns = e.facts.get(TailscaleStatusProbe()).dns_name or ""
    mount = config.mount(dns, e.serve.https)
    where = f"https://{dns}:{e.serve.https}/"
    if mount is None or mount.root_proxy() is None:
        return Link("serve", False, f"no serve entry for {where}", _serve_fix(e, w))
    proxy = normalize_target(mount.root_proxy() or "")
    if proxy != _target(e):
        return Link(
            "serve", False, f"{where} proxies to {proxy}, not {_target(e)}", _serve_fix(e, w)
        )
    return Link("serve", True, f"{where} -> {proxy}")


@chain_link("funnel")
def _funnel(e: Evidence, w: Words) -> Link | None:
    from reconciler.facts.tailscale import ServeStatusProbe, TailscaleStatusProbe

    if e.serve is None or e.spec.tailscale is None:
        return None
    dns = e.facts.get(TailscaleStatusProbe()).dns_name or ""
    key = f"{dns}:{e.serve.https}"
    public = key in e.facts.get(ServeStatusProbe()).funnel
    allowed = e.serve.funnel and e.spec.tailscale.funnel == "allow"
    if public and not allowed:
        # Serving the port again removes its funnel entry and keeps the serve (host-facts §2).
        fix = w.root_cmd(
            "tailscale", "serve", "--bg", "--yes", f"--https={e.serve.https}", _target(e)
        )
        return Link(
            "funnel",
            False,
            f"{key} is open to the internet (Funnel) and the spec does not allow it",
            fix,
        )
    return Link("funnel", True, "public (Funnel allowed)" if public else "tailnet only")


def _status(e: Evidence) -> Any:
    from reconciler.facts.systemd import UnitStatusProbe

    return e.facts.get(UnitStatusProbe(e.unit))


@chain_link("manager")
def _manager(e: Evidence, w: Words) -> Link:
    from reconciler.facts.systemd import LingerProbe, SystemdProbe

    status = _status(e)
    if status.reachable:
        return Link("manager", True, f"{e.spec.host.user}'s systemd manager is running")
    systemd = e.facts.get(SystemdProbe())
    if systemd.blocker() is not None:
        # Linger and `systemctl start user@` cannot help where systemd is not PID 1.
        return Link(
            "manager",
            False,
            f"{systemd.blocker()}: there is no user manager to run the gateways",
            "run the gateways on a host (or container) booted with systemd as PID 1",
        )
    if not e.facts.get(LingerProbe(e.spec.host.user)):
        fix = w.root_cmd("loginctl", "enable-linger", e.spec.host.user)
    else:
        fix = w.root_cmd("systemctl", "start", f"user@{w.uid}.service")
    return Link("manager", False, status.detail, fix)


@chain_link("unit")
def _unit(e: Evidence, w: Words) -> Link:
    status = _status(e)
    if not status.loaded:
        return Link("unit", False, f"{e.unit} is {status.load_state or 'not loaded'}", w.apply())
    if not status.enabled:
        return Link(
            "unit",
            False,
            f"{e.unit} is {status.unit_file_state or 'not enabled'}",
            w.user_cmd("systemctl", "--user", "enable", e.unit),
        )
    return Link("unit", True, f"{e.unit} loaded and enabled")


def _restart_loop(e: Evidence) -> str | None:
    """Why the unit counts as restart-looping, or None."""
    from reconciler.facts.systemd import UnitRestartsProbe

    status = _status(e)
    if not status.reachable:
        return None
    restarts = e.facts.get(UnitRestartsProbe(e.unit))
    crashed = restarts.result not in ("", "success")
    if status.sub_state == "auto-restart" or (
        not status.running and (restarts.n_restarts > 0 or (crashed and restarts.last_exit()))
    ):
        last = restarts.last_exit() or f"Result={restarts.result}"
        return (
            f"{e.unit} keeps failing ({status.active_state}/{status.sub_state}, restarted "
            f"{restarts.n_restarts} times, last {last})"
        )
    return None


@chain_link("restarts")
def _restarts(e: Evidence, w: Words) -> Link:
    why = _restart_loop(e)
    if why is None:
        return Link("restarts", True, "not restarting")
    log = e.journal or ((f"({e.journal_detail})",) if e.journal_detail else ())
    fix = (
        f"read the log: {w.user_cmd('journalctl', '--user', '-u', e.unit, '-n', '50')}; fix "
        f"what it says, then {w.user_cmd('systemctl', '--user', 'restart', e.unit)}"
    )
    return Link("restarts", False, why, fix, log)


@chain_link("active")
def _active(e: Evidence, w: Words) -> Link:
    status = _status(e)
    if not status.running:
        return Link(
            "active",
            False,
            f"{e.unit} is {status.active_state} ({status.sub_state})",
            w.user_cmd("systemctl", "--user", "start", e.unit),
        )
    return Link("active", True, f"{e.unit} is {status.active_state} (PID {status.main_pid})")


@chain_link("port")
def _port(e: Evidence, w: Words) -> Link:
    from reconciler.facts.listeners import ListenersProbe

    port = e.profile.port
    status = _status(e)
    listeners = [
        lst
        for lst in e.facts.get(ListenersProbe(tuple(sorted({p.port for p in e.spec.profiles}))))
        if lst.port == port
    ]
    ours = [
        lst
        for lst in listeners
        if (status.main_pid is not None and lst.pid == status.main_pid)
        or lst.in_unit(e.unit)
        or (lst.pid is None and w.uid == lst.uid)
    ]
    if ours:
        return Link("port", True, f"listening on {ours[0].address}:{port}")
    log = w.user_cmd("journalctl", "--user", "-u", e.unit, "-n", "50")
    if listeners:
        other = listeners[0]
        return Link(
            "port",
            False,
            f"port {port} is held by {other.describe()}, not {e.unit}",
            f"stop that process, then {w.user_cmd('systemctl', '--user', 'restart', e.unit)}",
        )
    planned = e.actions("config", "unit")
    because = f"; the spec differs: {planned[0].reason}" if planned else ""
    fix = w.apply() if planned else f"read the log: {log}"
    return Link("port", False, f"nothing listens on port {port}{because}", fix)


@chain_link("rpc")
def _rpc(e: Evidence, w: Words) -> Link:
    if e.health is None:
        return Link(
            "rpc",
            False,
            f"the gateway CLI ({_names(e.spec).command}) is not installed",
            w.apply(),
        )
    health = e.facts.get(e.health)
    if health.ok:
        return Link("rpc", True, "gateway health: ok")
    detail = f"gateway health failed: {health.detail}"
    stale = e.actions("service")
    if stale:  # e.g. the token changed on disk and the running gateway still has the old one
        return Link("rpc", False, f"{detail}; {stale[0].reason}", w.apply())
    check = e.health.call().command("gateway", "health", "--json").argv
    log = w.user_cmd("journalctl", "--user", "-u", e.unit, "-n", "50")
    return Link(
        "rpc", False, detail, f"read the log: {log}; check again with: {w.user_cmd(*check)}"
    )


@chain_link("linger")
def _linger(e: Evidence, w: Words) -> Link | None:
    from reconciler.facts.systemd import LingerProbe

    if not e.spec.linger:
        return None
    if not e.facts.get(LingerProbe(e.spec.host.user)):
        return Link(
            "linger",
            False,
            f"linger is off for {e.spec.host.user}: the gateway stops "
            "at logout and does not start at boot",
            w.root_cmd("loginctl", "enable-linger", e.spec.host.user),
        )
    return Link("linger", True, "linger on")


def _planned(e: Evidence, w: Words, name: str, parts: tuple[str, ...], ok: str) -> Link:
    actions = e.actions(*parts)
    if actions:
        reasons = "; ".join(_described(a) for a in actions)
        return Link(name, False, reasons, w.apply())
    return Link(name, True, ok)


def _described(action: Action) -> str:
    """The plan's reason and what differs (`mode: 0755 -> 0700`; secrets never shown)."""
    changes = ", ".join(
        f"{c.path}: {c.before} -> {c.after}" for c in action.changes if not c.sensitive
    )
    return f"{action.reason} ({changes})" if changes else action.reason


@chain_link("config")
def _config(e: Evidence, w: Words) -> Link:
    return _planned(e, w, "config", ("config",), "owned config keys match the spec")


@chain_link("state")
def _state(e: Evidence, w: Words) -> Link:
    return _planned(e, w, "state", ("state", "workspace"), "state directories and modes match")


@chain_link("secrets")
def _secrets(e: Evidence, w: Words) -> Link | None:
    """The token file and every file or folder in `credentials/` that group or others may
    access are named, with the chmod that closes them (apply refuses such a token file too)."""
    problems: list[str] = []
    fixes: list[str] = []
    if e.token is not None:
        found = e.facts.get(e.token).file
        if found.kind == "file" and found.mode is not None and found.mode & 0o077:
            path = str(e.token.path)
            problems.append(
                f"{path} has mode {found.mode:04o}: other users on this host may read the "
                "gateway token"
            )
            fixes.append(w.user_cmd("chmod", "600", path))
    if e.credentials is not None:
        exposed = e.facts.get(e.credentials)
        if exposed.entries:
            shown = exposed.entries[:_NAMED]
            named = ", ".join(f"{x.path} ({x.described}, mode {x.mode or 0:04o})" for x in shown)
            rest = len(exposed.entries) - len(shown)
            more = f" and {rest} more" if rest else ""
            more += " (and perhaps more: the walk stopped)" if exposed.more else ""
            problems.append(
                f"other users on this host may read these channel logins: {named}{more}"
            )
            if rest or exposed.more:
                fixes.append(w.user_cmd("chmod", "-R", "go-rwx", str(e.credentials.path)))
            else:
                fixes.append(w.user_cmd("chmod", "go-rwx", *(str(x.path) for x in shown)))
    if problems:
        return Link("secrets", False, "; ".join(problems), "; ".join(fixes))
    private = "the token file and credentials are" if e.token else "credentials are"
    return Link("secrets", True, f"{private} private (no group or other access)")


_NAMED = 10  # credentials entries named one by one; more get one `chmod -R`


LINKS: tuple[str, ...] = tuple(name for name, _ in _CHAIN)


# --- output -----------------------------------------------------------------------------------


def render_human(diagnoses: Sequence[Diagnosis], elapsed_s: float, commands: int) -> str:
    """Per profile: the URL, each checked link, the broken one's fix and what was not checked."""
    lines: list[str] = []
    for d in diagnoses:
        where = d.url or f"not served over Tailscale (on the host: http://127.0.0.1:{d.port}/)"
        lines.append(f"profile {d.profile}: {where}")
        for link in d.links:
            # Details and journal lines carry others' text (gateway output, browser fields).
            detail = printable(link.detail)
            lines.append(f"  {'ok    ' if link.ok else 'BROKEN'} {link.name}: {detail}")
            lines.extend(f"         | {printable(text)}" for text in link.log)
            if link.fix:
                lines.append(f"         fix: {printable(link.fix)}")
        if d.unchecked:
            lines.append(f"  (not checked until fixed: {', '.join(d.unchecked)})")
        for finding in d.findings:
            lines.append(f"  note {finding.name}: {printable(finding.detail)}")
            if finding.fix:
                lines.append(f"         do: {printable(finding.fix)}")
    broken = [d.profile for d in diagnoses if not d.healthy]
    verdict = f"broken: {', '.join(broken)}" if broken else "healthy"
    lines.append(
        f"doctor: {len(diagnoses)} profile(s), {verdict} ({elapsed_s:.1f} s, {commands} commands)"
    )
    return "\n".join(lines) + "\n"


def render_json(diagnoses: Sequence[Diagnosis]) -> str:
    """The diagnoses as a JSON document (docs/doctor.md)."""

    def link(item: Link) -> dict[str, Any]:
        out: dict[str, Any] = {"link": item.name, "ok": item.ok, "detail": item.detail}
        if item.fix:
            out["fix"] = item.fix
        if item.log:
            out["log"] = list(item.log)
        return out

    doc = {
        "healthy": all(d.healthy for d in diagnoses),
        "profiles": [
            {
                "profile": d.profile,
                "url": d.url,
                "healthy": d.healthy,
                "links": [link(x) for x in d.links],
                "unchecked": list(d.unchecked),
                "findings": [link(x) for x in d.findings],
            }
            for d in diagnoses
        ],
    }
    return json.dumps(doc, indent=2)
