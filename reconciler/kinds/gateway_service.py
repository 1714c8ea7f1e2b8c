"""Gateway services: every profile's unit enabled and running the current unit, config and code.

Wants: per profile, its user unit enabled (starts at boot with linger) and active, running what
is on disk now; afterwards its port answers on loopback.
Probes: one batched `systemctl --user show` for every unit (LoadState, ActiveState,
UnitFileState, NeedDaemonReload, ActiveEnterTimestamp, MainPID, ...); the unit file, config,
token file and the gateway's resolved real path (mtime/ctime, in-process); the linger flag; the
listeners on the profiles' ports from /proc (in-process).
Compares:
- enabled / active from the unit's state;
- restart: when this plan changes the unit, config, token or gateway package, or when the state
  says the running process is older than what it would read now: the unit file, config, token
  file or the gateway's real file changed after ActiveEnterTimestamp, or NeedDaemonReload=yes.
  Derived from the host, not remembered, so a run that wrote the unit and then failed before
  the restart still restarts next time;
- the port: a listener on a profile's port that is neither the unit's MainPID nor in its cgroup
  is a plan error naming the PID and command line (unless it is a legacy unit this plan prunes).
Fixes: one `systemd.daemon-reload` after all unit writes and removals (or when systemd says it
is needed); then per profile `enable` and `start`, or `restart`; then a verify action that
waits (`runtime.gateway.start_timeout_s`) for the port to answer on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.core.action import (
    Action,
    Finding,
    GatedSwitch,
    Handler,
    KindPlan,
    PlanView,
    RunCommand,
    WaitForPort,
)
from reconciler.core.diff import attribute_changes
from reconciler.core.host import HostContext
from reconciler.core.kind import NEEDS_USER, NO_FACTS, Kind, register
from reconciler.core.probe import Facts, Probe
from reconciler.core.switch import RESTART_DEADLINE_S
from reconciler.facts.files import PathState, RealPathProbe
from reconciler.facts.listeners import Listener, ListenersProbe
from reconciler.facts.profile_files import config_probe, token_probe, unit_probe
from reconciler.facts.systemd import UnitStatus
from reconciler.frozen import frozen
from reconciler.gateway.addresses import (
    DAEMON_RELOAD,
    GATEWAY,
    config_address,
    health_address,
    legacy_unit_address,
    legacy_unit_name,
    service_address,
    state_address,
    unit_address,
    workspace_address,
)
from reconciler.gateway.paths import ProfilePaths, profile_paths, uses_token_file
from reconciler.gateway.versions import versioned
from reconciler.kinds._move import replaced_units
from reconciler.kinds._programs import gateway_program, location_probe, version_probe
from reconciler.kinds._systemd import (
    managed_units,
    manager_probes,
    systemctl,
    unit_status,
)
from reconciler.spec.duration import format_duration
from reconciler.spec.model import Profile, Spec
from reconciler.spec.naming import GATEWAY_UNIT_PREFIXES

__all__ = ["DAEMON_RELOAD", "GatewayServiceKind", "binary_probe", "stale_reasons"]


def listeners_probe(spec: Spec) -> ListenersProbe:
    return ListenersProbe(tuple(sorted({p.port for p in spec.profiles})))


def binary_probe(gateway_path: str) -> RealPathProbe:
    return RealPathProbe(Path(gateway_path))


@frozen
class Triggers:
    """What else this plan changes for one profile (each one makes a running gateway stale),
    read from the actions that trigger its service and the plan around it."""

    state: str | None
    workspace: str | None
    config: str | None
    unit: str | None  # the address, present even when blocked (so blocks propagate)
    package: bool  # the gateway package is installed or upgraded
    removals: tuple[str, ...]  # unowned units claiming its port that the plan removes
    switched: bool = False  # the unit change is a health-gated switch: it restarts by itself

    @classmethod
    def of(cls, profile: str, view: PlanView) -> Triggers:
        by = {a.address for a in view.triggering(service_address(profile))}

        def planned(address: str) -> str | None:
            return address if view.planned(address) is not None else None

        unit = view.planned(unit_address(profile))
        return cls(
            switched=unit is not None
            and any(isinstance(op, GatedSwitch) for op in unit.operations),
            state=planned(state_address(profile)),
            workspace=planned(workspace_address(profile)),
            config=config_address(profile) if config_address(profile) in by else None,
            unit=unit_address(profile) if unit_address(profile) in by else None,
            package=GATEWAY in by,
            removals=tuple(sorted(a for a in by if legacy_unit_name(a) is not None)),
        )


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def stale_reasons(status: UnitStatus, files: Iterable[tuple[str, PathState]]) -> list[str]:
    """Pure: why the running service is older than what is on disk (empty: it is current).

    A file counts as changed at the later of its mtime and ctime: npm unpacks packages with
    their tarball's fixed mtime (1985), so only the ctime shows a new install.
    """
    reasons: list[str] = []
    if status.need_daemon_reload:
        reasons.append("systemd reports NeedDaemonReload=yes (the unit file changed on disk)")
    started = status.active_enter_s
    if started is None:
        return reasons
    for label, state in files:
        changed = state.changed_at
        if state.exists and changed is not None and changed > started:
            reasons.append(f"{label} changed at {_when(changed)}, after the start {_when(started)}")
    return reasons


def port_holders(
    profile: Profile,
    paths: ProfilePaths,
    status: UnitStatus | None,
    listeners: Iterable[Listener],
) -> list[Listener]:
    """Pure: listeners on the profile's port that are not its own service."""
    own_pid = status.main_pid if status is not None else None
    return [
        lst
        for lst in listeners
        if lst.port == profile.port
        and not (own_pid is not None and lst.pid == own_pid)
        and not lst.in_unit(paths.unit)
    ]


@register(70)
class GatewayServiceKind(Kind):
    name = "profile.service"
    needs = NEEDS_USER

    def placeholders(self, spec: Spec, host: HostContext) -> Iterable[Action]:
        for p in spec.profiles:
            yield Action(
                service_address(p.name),
                "create",
                f"profile {p.name}'s gateway runs always (enabled, active)",
                depends_on=(unit_address(p.name),),
            )

    def desired(self, spec: Spec, home: Path) -> Mapping[str, Any]:
        """Every profile's port (answering on loopback) and how long a start may take."""
        timeout = format_duration(int(spec.runtime.gateway.start_timeout_s))
        return {
            "runtime": {"gateway": {"start_timeout": timeout}},
            "profiles": {
                p.name: {"port": p.port, "serve_target": f"http://127.0.0.1:{p.port}"}
                for p in spec.profiles
            },
        }

    def discover(self, spec: Spec, host: HostContext) -> Iterable[Probe[Any]]:
        yield location_probe(gateway_program(spec), host)

    def probes(
        self, spec: Spec, host: HostContext, found: Facts = NO_FACTS
    ) -> Iterable[Probe[Any]]:
        # Only what a restart is decided from; what the other kinds change comes as triggers.
        yield from manager_probes(spec, host)
        yield listeners_probe(spec)
        gateway = version_probe(gateway_program(spec), host, found)
        yield gateway
        if gateway.path is not None:
            yield binary_probe(gateway.path)
        for profile in spec.profiles:
            paths = profile_paths(spec, profile, host)
            yield unit_probe(paths)
            yield config_probe(paths)
            if uses_token_file(spec, profile):
                yield token_probe(spec, paths)

    def plan(self, spec: Spec, host: HostContext, facts: Facts) -> KindPlan:
        # The reload and the services are handlers: what they do depends on what the other
        # kinds plan (unit and config writes, unit removals, a new gateway package).
        found = facts.get(listeners_probe(spec))
        listeners = tuple(found)  # read once: every profile's handler shares it

        def reload(view: PlanView) -> KindPlan:
            action = _daemon_reload(spec, facts, view)
            return KindPlan(actions=(action,) if action is not None else ())

        def service(profile: Profile) -> Handler:
            return Handler(
                service_address(profile.name),
                lambda view: _profile_service(spec, host, facts, view, profile, listeners),
            )

        return KindPlan(
            handlers=(Handler(DAEMON_RELOAD, reload), *(service(p) for p in spec.profiles))
        )


def _replaced(view: PlanView, profile: str) -> str | None:
    """The unit a product move planned for `profile` replaces (None: no move)."""
    unit = view.planned(unit_address(profile))
    return next(
        (
            op.replaces
            for op in (unit.operations if unit is not None else ())
            if isinstance(op, GatedSwitch)
        ),
        None,
    )


def _daemon_reload(spec: Spec, facts: Facts, view: PlanView) -> Action | None:
    """One reload after every unit write and removal, or when systemd asks for one."""
    triggered = [a.address for a in view.triggering(DAEMON_RELOAD)]
    written = [a for a in triggered if legacy_unit_name(a) is None]
    removed = sorted(a for a in triggered if legacy_unit_name(a) is not None)
    removed_units = [legacy_unit_name(a) or "" for a in removed]
    statuses = [unit_status(facts, u) for u in (*managed_units(spec), *removed_units)]
    stale = sorted(s.unit for s in statuses if s is not None and s.need_daemon_reload)
    if not (written or removed or stale):
        return None
    why = []
    if written or removed:
        why.append("unit files change in this plan")
    if stale:
        why.append(f"systemd reports NeedDaemonReload=yes for {', '.join(stale)}")
    return Action(
        DAEMON_RELOAD,
        "update",
        "the user's manager must re-read its units: " + "; ".join(why),
        (systemctl("daemon-reload"),),
        depends_on=tuple(dict.fromkeys([*written, *removed])),
    )


def _profile_service(
    spec: Spec,
    host: HostContext,
    facts: Facts,
    view: PlanView,
    profile: Profile,
    listeners: tuple[Listener, ...],
) -> KindPlan:
    """One profile's service action (enable/start/restart) and its health check."""
    paths = profile_paths(spec, profile, host)
    status = unit_status(facts, paths.unit)
    triggers = Triggers.of(profile.name, view)
    depends = [*triggers.removals]
    errors: list[str] = []
    for holder in port_holders(profile, paths, status, listeners):
        pruned = next((u for u in holder.cgroup if view.planned(legacy_unit_address(u))), None)
        if pruned is not None:
            depends.append(legacy_unit_address(pruned))
        elif _replaced(view, profile.name) in holder.cgroup:
            pass  # a product move stops that unit first (kinds/_move.py); the service waits for it
        else:
            errors.append(_port_error(profile, paths, holder, replaced_units(spec)))
    action = _service(spec, host, profile, paths, status, triggers, facts)
    if action is None:
        return KindPlan(errors=tuple(errors))
    deps = [
        *(a for a in (triggers.state, triggers.workspace, triggers.config, triggers.unit) if a),
        *((DAEMON_RELOAD,) if view.planned(DAEMON_RELOAD) else ()),
        *((GATEWAY,) if triggers.package else ()),
        *depends,
    ]
    masked = status is not None and "masked" in (status.load_state, status.unit_file_state)
    service = Action(
        action.address,
        action.kind,
        action.reason,
        action.operations,
        changes=action.changes,
        depends_on=tuple(dict.fromkeys(deps)),
        blocked=(
            f"{paths.unit} is masked (someone ran `systemctl --user mask`): unmask "
            "it by hand if it should run"
            if masked
            else None
        ),
    )
    health = _health(spec, profile, service)
    return KindPlan(
        actions=(service, *((health,) if isinstance(health, Action) else ())),
        findings=(health,) if isinstance(health, Finding) else (),
        errors=tuple(errors),
    )


def _health(spec: Spec, profile: Profile, service: Action) -> Action | Finding | None:
    """The check that a (re)started gateway answers on its port; None when it only got enabled."""
    starts = any(
        isinstance(op, RunCommand) and op.command.argv[2] in ("start", "restart")
        for op in service.operations
    )
    if not starts:
        return None  # only enabled: the running gateway was already checked
    if profile.bind == "tailnet":
        return Finding(
            health_address(profile.name),
            "not checked: with bind tailnet the gateway does not listen on loopback",
        )
    return Action(
        health_address(profile.name),
        "verify",
        f"profile {profile.name}'s gateway answers on 127.0.0.1:{profile.port}",
        (WaitForPort(profile.port, spec.runtime.gateway.start_timeout_s),),
        depends_on=(service_address(profile.name),),
    )


def _restart_reasons(
    spec: Spec,
    host: HostContext,
    profile: Profile,
    paths: ProfilePaths,
    status: UnitStatus,
    triggers: Triggers,
    facts: Facts,
) -> list[str]:
    """Why a running gateway must restart: what this plan changes, or what changed on disk
    after it started (so a run that wrote a file and died before the restart still restarts)."""
    if triggers.switched:
        return []  # the switch restarts it after everything before it, behind its health gate
    reasons: list[str] = []
    if triggers.unit:
        reasons.append("its unit changes in this plan")
    if triggers.config:
        reasons.append("its config changes in this plan")
    if triggers.package:
        reasons.append("the gateway package changes in this plan")
    files: list[tuple[str, PathState]] = [
        (str(paths.unit_file), facts.get(unit_probe(paths))),
        (str(paths.config), facts.get(config_probe(paths))),
    ]
    if uses_token_file(spec, profile):
        files.append((str(paths.token_env), facts.get(token_probe(spec, paths)).file))
    gateway = facts.get(version_probe(gateway_program(spec), host, facts))
    # A versioned install never changes after its rename (a new version is a new unit): only
    # the global install's files can change under a running gateway.
    if gateway.path is not None and not versioned(spec):
        binary = facts.get(binary_probe(gateway.path))
        files.append((f"the gateway ({binary.path})", binary))
    reasons.extend(stale_reasons(status, files))
    return reasons


def _service(
    spec: Spec,
    host: HostContext,
    profile: Profile,
    paths: ProfilePaths,
    status: UnitStatus | None,
    triggers: Triggers,
    facts: Facts,
) -> Action | None:
    """enable / start / restart for one profile (dependencies are added by the caller)."""
    known = status is not None and status.reachable
    enabled = known and status is not None and status.enabled
    running = known and status is not None and status.running
    operations: list[RunCommand] = []
    if not enabled:
        operations.append(systemctl("enable", paths.unit))
    reasons: list[str] = []
    if not running:
        operations.append(systemctl("start", paths.unit))
    else:
        assert status is not None
        reasons = _restart_reasons(spec, host, profile, paths, status, triggers, facts)
        if reasons:
            # Stopping the old process may take up to the unit's TimeoutStopSec.
            operations.append(systemctl("restart", paths.unit, timeout_s=RESTART_DEADLINE_S))
    if not operations:
        return None
    if not known:
        reason = f"start {paths.unit} once the user's manager runs; enable it at boot"
    elif not running and not enabled:
        reason = f"profile {profile.name}'s gateway runs always (enable and start {paths.unit})"
    elif not running:
        reason = f"{paths.unit} is {status.active_state if status else 'unknown'}: start it"
    elif reasons:
        reason = f"restart {paths.unit}: " + "; ".join(reasons)
    else:
        reason = f"{paths.unit} must start at boot: enable it"
    return Action(
        service_address(profile.name),
        "create" if not (enabled or running) else "update",
        reason,
        tuple(operations),
        changes=attribute_changes(
            {"enabled": True, "active": True},
            {"enabled": enabled, "active": running} if known else {},
        ),
    )


def _port_error(
    profile: Profile, paths: ProfilePaths, holder: Listener, replaced: frozenset[str]
) -> str:
    where = ""
    owner_unit = next((c for c in reversed(holder.cgroup) if c.endswith(".service")), None)
    if owner_unit and not owner_unit.startswith("user@"):
        where = f", which runs in {owner_unit}"
    hint = "stop it or give the profile another port"
    if owner_unit in replaced:
        hint = "the product move replaces that unit once the unit's own error above is fixed"
    elif owner_unit and owner_unit.startswith(GATEWAY_UNIT_PREFIXES):
        hint = (
            f"set prune: true on profile {profile.name} or prune_units: true to remove that "
            "unit, or give the profile another port"
        )
    return (
        f"{service_address(profile.name)}: port {profile.port} is held by {holder.describe()}"
        f"{where}, not by {paths.unit}: {hint}"
    )
