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

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.core.action import Action, Finding, KindPlan, RunCommand, WaitForPort
from reconciler.core.command import Command
from reconciler.core.diff import attribute_changes
from reconciler.core.host import HostContext
from reconciler.core.probe import Facts, Probe
from reconciler.facts.files import PathState, RealPathProbe
from reconciler.facts.listeners import Listener, ListenersProbe
from reconciler.facts.systemd import UnitStatus
from reconciler.gateway.naming import GATEWAY_UNIT_PREFIXES
from reconciler.gateway.paths import ProfilePaths, address, profile_paths, user_blocker
from reconciler.kinds._systemd import (
    managed_units,
    manager_gate,
    manager_probes,
    unit_status,
)
from reconciler.kinds.gateway_config import (
    ConfigUnreadable,
    GatewayConfigKind,
    config_address,
    config_probe,
)
from reconciler.kinds.gateway_config import plan_config as _plan_config
from reconciler.kinds.gateway_unit import (
    GatewayUnitKind,
    UnitRenderError,
    plan_unit,
    token_probe,
    unit_address,
    unit_probe,
)
from reconciler.kinds.legacy_units import LegacyUnit, LegacyUnitsKind, legacy_units
from reconciler.kinds.profile_state import (
    ProfileStateKind,
    plan_state,
    plan_workspace,
    state_address,
    workspace_address,
)
from reconciler.kinds.runtime import GATEWAY, gateway_probe
from reconciler.spec.model import Profile, Spec

DAEMON_RELOAD = "systemd.daemon-reload"


def service_address(profile: str) -> str:
    return address(profile, "service")


def health_address(profile: str) -> str:
    return address(profile, "health")


def _systemctl(*args: str) -> RunCommand:
    return RunCommand(Command(("systemctl", "--user", *args), scope="user", mutating=True))


def listeners_probe(spec: Spec) -> ListenersProbe:
    return ListenersProbe(tuple(sorted({p.port for p in spec.profiles})))


def binary_probe(gateway_path: str) -> RealPathProbe:
    return RealPathProbe(Path(gateway_path))


@dataclass(frozen=True)
class PlannedWrites:
    """What else this plan changes for one profile (each one makes a running gateway stale)."""

    state: str | None
    workspace: str | None
    config: str | None
    unit: str | None  # the address, present even when blocked (so blocks propagate)
    unit_runnable: bool


def planned_writes(spec: Spec, profile: Profile, host: HostContext, facts: Facts) -> PlannedWrites:
    """Pure: the same plans the state, config and unit kinds make, reduced to their addresses."""
    paths = profile_paths(spec, profile, host)
    state, _ = plan_state(paths, host, facts)
    workspace, _ = plan_workspace(paths, host, facts)
    try:
        config = _plan_config(spec, profile, host, facts)
    except ConfigUnreadable:
        config = None  # the config kind reports the error, which stops the whole plan
    try:
        unit = plan_unit(spec, profile, host, facts)
    except UnitRenderError:
        unit = None  # the unit kind reports the error, which stops the whole plan
    return PlannedWrites(
        state_address(profile.name) if state else None,
        workspace_address(profile.name) if workspace else None,
        config_address(profile.name) if config else None,
        unit_address(profile.name) if unit else None,
        unit is not None and unit.blocked is None,
    )


def gateway_will_change(spec: Spec, host: HostContext, facts: Facts) -> bool:
    """True when the runtime kind plans to install or upgrade the gateway package.

    The same condition as `RuntimeKind`: a pinned version, no explicit command, and the
    installed version differs.
    """
    pin = spec.runtime.gateway
    if pin.version is None or pin.command is not None:
        return False
    return facts.get(gateway_probe(spec, host)).version != pin.version


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


class GatewayServiceKind:
    name = "profile.service"

    def probes(self, spec: Spec, host: HostContext) -> Iterable[Probe[Any]]:
        if host.user is None:
            return
        # Every fact the other profile kinds read too: this kind re-derives their plans (pure)
        # to know what changes; equal probes run once.
        for kind in (ProfileStateKind(), GatewayConfigKind(), GatewayUnitKind(), LegacyUnitsKind()):
            yield from kind.probes(spec, host)
        yield from manager_probes(spec, host)
        yield listeners_probe(spec)
        gateway = gateway_probe(spec, host)
        yield gateway
        if gateway.path is not None:
            yield binary_probe(gateway.path)
        for profile in spec.profiles:
            paths = profile_paths(spec, profile, host)
            yield unit_probe(paths)
            yield config_probe(paths)
            if profile.auth == "token":
                yield token_probe(spec, paths)

    def plan(self, spec: Spec, host: HostContext, facts: Facts) -> KindPlan:
        if host.user is None:
            return KindPlan(
                actions=tuple(
                    Action(
                        service_address(p.name),
                        "create",
                        f"profile {p.name}'s gateway runs always (enabled, active)",
                        depends_on=(unit_address(p.name),),
                        blocked=user_blocker(host),
                    )
                    for p in spec.profiles
                )
            )
        writes = {p.name: planned_writes(spec, p, host, facts) for p in spec.profiles}
        removals = {u.name: u for u in legacy_units(spec, host, facts) if u.prune}
        gate_deps, gate_block = manager_gate(spec, host, facts)
        blocked = user_blocker(host) or gate_block

        actions: list[Action] = []
        reload = self._daemon_reload(spec, facts, writes, removals, gate_deps, blocked)
        if reload is not None:
            actions.append(reload)
        errors: list[str] = []
        findings: list[Finding] = []
        listeners = facts.get(listeners_probe(spec))
        package_changes = gateway_will_change(spec, host, facts)
        gateway = facts.get(gateway_probe(spec, host))
        binary = facts.get(binary_probe(gateway.path)) if gateway.path else None
        for profile in spec.profiles:
            paths = profile_paths(spec, profile, host)
            status = unit_status(facts, paths.unit)
            mine = writes[profile.name]
            depends = list(gate_deps)
            for owner, legacy in sorted(removals.items()):
                if legacy.port == profile.port:
                    depends.append(f"unit[{owner}]")
            for holder in port_holders(profile, paths, status, listeners):
                pruned = next((n for n in removals if holder.in_unit(n)), None)
                if pruned is not None:
                    depends.append(f"unit[{pruned}]")
                    continue
                errors.append(_port_error(profile, paths, holder))
            action = self._service(
                spec, profile, paths, status, mine, facts, package_changes, binary
            )
            if action is None:
                continue
            deps = [
                *(a for a in (mine.state, mine.workspace, mine.config, mine.unit) if a),
                *((DAEMON_RELOAD,) if reload is not None else ()),
                *((GATEWAY,) if package_changes else ()),
                *depends,
            ]
            masked = status is not None and "masked" in (status.load_state, status.unit_file_state)
            actions.append(
                replace(
                    action,
                    depends_on=tuple(dict.fromkeys(deps)),
                    blocked=blocked
                    or (
                        f"{paths.unit} is masked (someone ran `systemctl --user mask`): unmask "
                        "it by hand if it should run"
                        if masked
                        else None
                    ),
                )
            )
            starts = any(
                isinstance(op, RunCommand) and op.command.argv[2] in ("start", "restart")
                for op in action.operations
            )
            if not starts:
                continue  # only enabled: the running gateway was already checked
            if profile.bind == "tailnet":
                findings.append(
                    Finding(
                        health_address(profile.name),
                        "not checked: with bind tailnet the gateway does not listen on loopback",
                    )
                )
                continue
            actions.append(
                Action(
                    health_address(profile.name),
                    "verify",
                    f"profile {profile.name}'s gateway answers on 127.0.0.1:{profile.port}",
                    (WaitForPort(profile.port, spec.runtime.gateway.start_timeout_s),),
                    depends_on=(service_address(profile.name),),
                    blocked=blocked,
                )
            )
        return KindPlan(actions=tuple(actions), findings=tuple(findings), errors=tuple(errors))

    def _daemon_reload(
        self,
        spec: Spec,
        facts: Facts,
        writes: dict[str, PlannedWrites],
        removals: dict[str, LegacyUnit],
        gate_deps: tuple[str, ...],
        blocked: str | None,
    ) -> Action | None:
        """One reload after every unit write and removal, or when systemd asks for one."""
        written = [w.unit for w in writes.values() if w.unit and w.unit_runnable]
        removed = [f"unit[{name}]" for name in sorted(removals)]
        statuses = [unit_status(facts, u) for u in (*managed_units(spec), *sorted(removals))]
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
            (_systemctl("daemon-reload"),),
            depends_on=tuple(dict.fromkeys([*written, *removed, *gate_deps])),
            blocked=blocked,
        )

    def _service(
        self,
        spec: Spec,
        profile: Profile,
        paths: ProfilePaths,
        status: UnitStatus | None,
        writes: PlannedWrites,
        facts: Facts,
        package_changes: bool,
        binary: PathState | None,
    ) -> Action | None:
        """enable / start / restart for one profile (dependencies are added by the caller)."""
        known = status is not None and status.reachable
        enabled = known and status is not None and status.enabled
        running = known and status is not None and status.running
        operations: list[RunCommand] = []
        if not enabled:
            operations.append(_systemctl("enable", paths.unit))
        reasons: list[str] = []
        if not running:
            operations.append(_systemctl("start", paths.unit))
        else:
            assert status is not None
            if writes.unit:
                reasons.append("its unit changes in this plan")
            if writes.config:
                reasons.append("its config changes in this plan")
            if package_changes:
                reasons.append("the gateway package changes in this plan")
            files: list[tuple[str, PathState]] = [
                (str(paths.unit_file), facts.get(unit_probe(paths))),
                (str(paths.config), facts.get(config_probe(paths))),
            ]
            if profile.auth == "token":
                token = facts.get(token_probe(spec, paths))
                files.append((str(paths.token_env), token.file))
            if binary is not None:
                files.append((f"the gateway ({binary.path})", binary))
            reasons.extend(stale_reasons(status, files))
            if reasons:
                operations.append(_systemctl("restart", paths.unit))
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


def _port_error(profile: Profile, paths: ProfilePaths, holder: Listener) -> str:
    where = ""
    owner_unit = next((c for c in reversed(holder.cgroup) if c.endswith(".service")), None)
    if owner_unit and not owner_unit.startswith("user@"):
        where = f", which runs in {owner_unit}"
    hint = "stop it or give the profile another port"
    if owner_unit and owner_unit.startswith(GATEWAY_UNIT_PREFIXES):
        hint = (
            f"set prune: true on profile {profile.name} or prune_units: true to remove that "
            "unit, or give the profile another port"
        )
    return (
        f"{service_address(profile.name)}: port {profile.port} is held by {holder.describe()}"
        f"{where}, not by {paths.unit}: {hint}"
    )
