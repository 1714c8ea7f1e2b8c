"""The reconcile timer: a systemd user timer that runs `reconciler apply` unattended.

Wants: with `reconcile.timer.enabled: true`, two user units in `~/.config/systemd/user/`,
rendered byte for byte from the spec:
- `reconciler.service`, Type=oneshot, `ExecStart=<program> apply <spec> --yes
  --non-interactive --lock-timeout 300`, where <spec> is the spec's absolute path and <program>
  `reconcile.command` when the spec sets it, else the installed `reconciler` entry point beside
  the interpreter running this plan (`sys.executable`: the pipx or /opt venv the user installed),
  else `<python> -m reconciler`. An interpreter inside a temporary directory or a git work tree
  (a scratch clone's `.venv`) is refused, blocked with the reason, unless `reconcile.command`
  says what to run: a timer bound to it breaks when that directory changes or goes away.
  With `reconcile.source` it adds `--git-ref <ref>`, and <spec> must lie inside the clone: the
  timer then applies the spec as committed at that ref (reconciler/shell/git.py);
- `reconciler.timer`: OnBootSec=, OnUnitActiveSec= (the interval), RandomizedDelaySec=,
  Persistent=true, WantedBy=timers.target;
and the timer enabled and active. With `enabled: false`: the timer stopped and disabled and
both files removed (when present).
Probes: both files (text, mode, owner; in-process), both units' state (the shared batched
`systemctl --user show`), the interpreter and the resolved spec/clone paths (in-process, so
that plan stays pure), the linger flag (the user's manager may only run once linger is on).
Compares: file text/mode/owner with the rendering; UnitFileState=enabled; ActiveState=active;
NeedDaemonReload.
Fixes: `WriteFile` (0644, backup kept, with a diff) / `RemoveFile`; one
`systemctl --user daemon-reload` after our writes or removals (`reconcile.timer.daemon-reload`;
it runs after the gateway kinds' shared `systemd.daemon-reload` when both are planned, since
that one cannot be ordered after our files); then `enable` / `start`, or `restart` when the
timer file changed under a running timer; `disable` / `stop` before removal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from reconciler.core.action import Action, KindPlan, RemoveFile
from reconciler.core.diff import attribute_changes
from reconciler.core.host import HostContext
from reconciler.core.kind import NEEDS_USER, NO_FACTS, Kind, register
from reconciler.core.probe import Facts, Probe
from reconciler.facts.codec import Wanted, records
from reconciler.facts.files import PathProbe
from reconciler.facts.invocation import (  # noqa: F401 (re-exported for its tests)
    TEMPORARY,
    Invocation,
    InvocationProbe,
    scratch_location,
)
from reconciler.facts.systemd import UnitStatus, UnitStatusProbe
from reconciler.gateway.addresses import DAEMON_RELOAD
from reconciler.gateway.paths import expand, placeholder_host, unit_dir
from reconciler.kinds._invocation import (
    invocation_probe,
    program,
    unusable_interpreter,
)
from reconciler.kinds._systemd import (
    HEADER,
    UnitRenderError,
    UserTimer,
    systemctl,
    systemd_word,
    timer_upkeep,
    unit_file_action,
    with_block,
)
from reconciler.spec.duration import format_duration
from reconciler.spec.model import GitSource, Spec, Timer

SERVICE_UNIT = "reconciler.service"
TIMER_UNIT = "reconciler.timer"

SERVICE = "reconcile.timer.service"  # the reconciler.service file
UNIT = "reconcile.timer.unit"  # the reconciler.timer file
RELOAD = "reconcile.timer.daemon-reload"
STATE = "reconcile.timer.state"  # the timer enabled and active

# A timer run waits this long for an interactive apply to finish instead of failing at once.
LOCK_TIMEOUT_S = 300
# A gateway install may take 15 minutes; a hung run must still end, or the timer never fires
# again (a oneshot service that is still activating is not started a second time).
RUN_TIMEOUT = "1h"


@records(needs=NEEDS_USER)
def _timer_command(spec: Spec, host: HostContext) -> Wanted:
    """The timer's ExecStart, and whether its units are there, are recorded whatever the spec
    (a later one may add the timer)."""
    return Wanted(
        probes=(invocation_probe(spec, host),), directories=((unit_dir(host), ("reconciler.",)),)
    )


TIMER = UserTimer(SERVICE_UNIT, TIMER_UNIT, "fires at boot and every interval")
service_path = TIMER.service_file
timer_path = TIMER.timer_file


# --- rendering (pure) --------------------------------------------------------------------------


def exec_argv(
    invocation: Invocation, source: GitSource | None, command: tuple[str, ...] | None = None
) -> tuple[str, ...]:
    """The timer's command line; UnitRenderError when it cannot be built from these facts."""
    if not invocation.python and command is None:
        raise UnitRenderError("the running interpreter's path is unknown (sys.executable)")
    if invocation.spec is None:
        raise UnitRenderError("the spec was not read from a file, so the timer cannot name it")
    argv = [*program(invocation, command), "apply", str(invocation.spec)]
    if source is not None:
        assert invocation.clone is not None  # the probe resolves the clone whenever a source is set
        if not invocation.spec.is_relative_to(invocation.clone):
            raise UnitRenderError(
                f"reconcile.source.git is {invocation.clone}, but the spec applied now is "
                f"{invocation.spec}, outside that clone: apply the spec from inside the clone "
                "so the timer can find it at each revision"
            )
        argv += ["--git-ref", source.ref]
    argv += ["--yes", "--non-interactive", "--lock-timeout", str(LOCK_TIMEOUT_S)]
    return tuple(argv)


def render_service(argv: tuple[str, ...]) -> str:
    """reconciler.service's exact text."""
    exec_start = " ".join(systemd_word(word, exec_line=True) for word in argv)
    return (
        "\n".join(
            [
                HEADER,
                "[Unit]",
                "Description=Reconcile this host with its spec (reconciler apply)",
                "",
                "[Service]",
                "Type=oneshot",
                f"ExecStart={exec_start}",
                # Unbuffered: each log line reaches the journal when it happens, in order with stderr.
                "Environment=PYTHONUNBUFFERED=1",
                "SyslogIdentifier=reconciler",
                f"TimeoutStartSec={RUN_TIMEOUT}",
            ]
        )
        + "\n"
    )


def render_timer(timer: Timer) -> str:
    """reconciler.timer's exact text."""
    return (
        "\n".join(
            [
                HEADER,
                "[Unit]",
                f"Description=Run reconciler apply every {format_duration(timer.interval_s)}",
                "",
                "[Timer]",
                f"OnBootSec={format_duration(timer.on_boot_s)}",
                f"OnUnitActiveSec={format_duration(timer.interval_s)}",
                f"RandomizedDelaySec={format_duration(timer.randomized_delay_s)}",
                "Persistent=true",
                "",
                "[Install]",
                "WantedBy=timers.target",
            ]
        )
        + "\n"
    )


# --- the kind ----------------------------------------------------------------------------------


@register(100)
class ReconcileTimerKind(Kind):
    name = "reconcile.timer"
    needs = NEEDS_USER

    def placeholders(self, spec: Spec, host: HostContext) -> Iterable[Action]:
        if spec.reconcile.timer.enabled:
            yield Action(STATE, "create", _reason(spec))

    def desired(self, spec: Spec, home: Path) -> Mapping[str, Any]:
        """The timer's schedule and unit files, the git source and the command it runs."""
        host = placeholder_host(spec, home)
        timer = spec.reconcile.timer
        source = spec.reconcile.source
        command = spec.reconcile.command
        return {
            "reconcile": {
                "timer": {
                    "enabled": timer.enabled,
                    "interval": format_duration(timer.interval_s),
                    "on_boot": format_duration(timer.on_boot_s),
                    "randomized_delay": format_duration(timer.randomized_delay_s),
                    "unit_files": {
                        "service": str(unit_dir(host) / SERVICE_UNIT),
                        "timer": str(unit_dir(host) / TIMER_UNIT),
                    }
                    if timer.enabled
                    else None,
                },
                "source": None
                if source is None
                else {"git": str(expand(source.path, home)), "ref": source.ref},
                "command": list(command) if command is not None else None,
            }
        }

    def probes(
        self, spec: Spec, host: HostContext, found: Facts = NO_FACTS
    ) -> Iterable[Probe[Any]]:
        yield from TIMER.probes(spec, host)
        if spec.reconcile.timer.enabled:
            yield invocation_probe(spec, host)

    def plan(self, spec: Spec, host: HostContext, facts: Facts) -> KindPlan:
        try:
            if spec.reconcile.timer.enabled:
                return plan_enabled(spec, host, facts)
            return plan_disabled(spec, host, facts)
        except UnitRenderError as exc:  # e.g. a directory where a unit file belongs
            raise UnitRenderError(f"{self.name}: {exc}") from exc


def _reason(spec: Spec) -> str:
    every = format_duration(spec.reconcile.timer.interval_s)
    return f"the spec asks for an unattended reconcile every {every}"


def plan_enabled(spec: Spec, host: HostContext, facts: Facts) -> KindPlan:
    """Both files as rendered, then reload, then the timer enabled and active."""
    timer_status = facts.get(UnitStatusProbe(TIMER_UNIT))
    service_status = facts.get(UnitStatusProbe(SERVICE_UNIT))
    files = _enabled_files(spec, host, facts)
    actions = [with_block(action, blocked=block) for action, block in files]
    written = [action.address for action, _ in files]
    stale = [s.unit for s in (service_status, timer_status) if s.reachable and s.need_daemon_reload]
    if written or stale:
        why = (
            "our unit files change in this plan"
            if written
            else (f"systemd reports NeedDaemonReload=yes for {', '.join(stale)}")
        )
        actions.append(
            Action(
                RELOAD,
                "update",
                f"the user's manager must re-read {SERVICE_UNIT} and {TIMER_UNIT}: {why}",
                (systemctl("daemon-reload"),),
                # After the gateway kinds' reload (when planned): one manager, one reload at a time.
                depends_on=(*written, DAEMON_RELOAD),
            )
        )
    timer_changes = any(a.address == UNIT and a.diff is not None for a, _ in files)
    state = _enabled_state(timer_status, timer_changes)
    if state is not None:
        after = [*written, *((RELOAD,) if written or stale else ())]
        actions.append(replace(state, depends_on=tuple(dict.fromkeys(after))))
    return KindPlan(actions=tuple(actions))


def _enabled_files(spec: Spec, host: HostContext, facts: Facts) -> list[tuple[Action, str | None]]:
    """The writes of reconciler.service and reconciler.timer that are needed, each with why it
    is blocked (an interpreter the user cannot run, a command line that cannot be built)."""
    assert host.user is not None
    user = host.user
    invocation = facts.get(invocation_probe(spec, host))
    service_found = facts.get(PathProbe(service_path(host), content=True))
    timer_found = facts.get(PathProbe(timer_path(host), content=True))
    service: Action | None
    try:
        service = unit_file_action(
            SERVICE,
            service_path(host),
            service_found,
            render_service(exec_argv(invocation, spec.reconcile.source, spec.reconcile.command)),
            user.name,
            user.uid,
            f"{SERVICE_UNIT} runs `reconciler apply` on the spec, unattended",
        )
        service_block = unusable_interpreter(invocation, host, spec.reconcile.command)
    except UnitRenderError as exc:
        # Without a command line there is nothing sane to write: block, and keep the timer off.
        service = Action(SERVICE, "create", f"{SERVICE_UNIT} runs `reconciler apply`")
        service_block = str(exc)
    timer = unit_file_action(
        UNIT,
        timer_path(host),
        timer_found,
        render_timer(spec.reconcile.timer),
        user.name,
        user.uid,
        _reason(spec),
    )
    return [(a, b) for a, b in ((service, service_block), (timer, None)) if a is not None]


def _enabled_state(status: UnitStatus, timer_changes: bool) -> Action | None:
    """enable / start the timer, or restart it when its file changed under it (dependencies
    and blocks are added by the caller)."""
    upkeep = timer_upkeep(status, TIMER_UNIT, file_changed=timer_changes)
    if not upkeep.operations:
        return None
    return Action(
        STATE,
        "update" if (upkeep.enabled or upkeep.running) else "create",
        TIMER.state_reason(upkeep.enabled, upkeep.running),
        upkeep.operations,
        changes=upkeep.changes,
    )


def plan_disabled(spec: Spec, host: HostContext, facts: Facts) -> KindPlan:
    """Timer stopped and disabled, then both files removed, then reload. Nothing when absent."""
    timer_status = facts.get(UnitStatusProbe(TIMER_UNIT))
    files = [
        (SERVICE, service_path(host), facts.get(PathProbe(service_path(host), content=True))),
        (UNIT, timer_path(host), facts.get(PathProbe(timer_path(host), content=True))),
    ]
    present = [(address, path) for address, path, found in files if found.exists]
    operations = TIMER.teardown(timer_status, timer_file=any(a == UNIT for a, _ in present))
    actions: list[Action] = []
    if operations:
        known = timer_status.reachable
        actions.append(
            Action(
                STATE,
                "delete",
                "reconcile.timer.enabled is false: no unattended runs",
                operations,
                changes=attribute_changes(
                    {"enabled": False, "active": False},
                    {"enabled": timer_status.enabled, "active": timer_status.running}
                    if known
                    else {},
                ),
            )
        )
    state_dep = (STATE,) if actions else ()
    for address, path in present:
        actions.append(
            Action(
                address,
                "delete",
                f"{path.name} is not wanted (reconcile.timer.enabled is false)",
                (RemoveFile(path),),
                depends_on=state_dep,
            )
        )
    if present:
        removed = tuple(address for address, _ in present)
        actions.append(
            Action(
                RELOAD,
                "update",
                f"the user's manager must forget {SERVICE_UNIT} and {TIMER_UNIT}",
                (systemctl("daemon-reload"),),
                depends_on=(*removed, DAEMON_RELOAD),
            )
        )
    return KindPlan(actions=tuple(actions))
