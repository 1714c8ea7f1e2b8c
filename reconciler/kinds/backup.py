"""Backups as desired state (`backup:` in the spec; docs/backups.md).

Wants, with a `backup` section: restic installed (0.12 or newer; the reconciler never downloads
it), the password file (and the environment file, when set) a regular file of mode 0600 owned
by the spec's user, the restic repository initialised, and two user units in
`~/.config/systemd/user/` rendered byte for byte by `kinds/_backup_units.py`:
`reconciler-backup.service` (runs `<program> backup run <spec>`) and `reconciler-backup.timer`,
the timer enabled and active. Without a `backup` section: the timer stopped and disabled and both
files removed (the repository and its snapshots are never touched).
Probes: where restic is (discovery) and `restic version`; the secret files' lstat (discovery, as
the user: the repository is only probed when they are usable); the repository
(`restic --no-lock --no-cache cat config` as the user, facts/backup.py); both unit files and
units (the batched `systemctl --user show`); the invocation (the program and the spec's path,
shared with the reconcile timer); the backup history (`backups.jsonl` of the spec's user).
Fixes: a missing restic, a bad secret file, a repository the password does not open or that
cannot be reached: blocked steps with the reason (a wrong password is never answered with a new
repository); an absent repository: `restic init` as the user, an explicit step; the unit files:
`WriteFile` with a diff, triggering the shared `systemd.daemon-reload` handler and this kind's
timer handler (enable / start, or restart when the timer file changed under a running timer).
Findings: a warning per profile whose last successful backup is older than twice the schedule
(or whose backups only ever failed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from reconciler.core.action import (
    Action,
    Finding,
    Handler,
    KindPlan,
    PlanView,
    RemoveFile,
    RunCommand,
)
from reconciler.core.command import Command
from reconciler.core.diff import attribute_changes
from reconciler.core.host import HostContext
from reconciler.core.kind import NEEDS_USER, NO_FACTS, Kind, register
from reconciler.core.probe import Facts, Probe
from reconciler.facts.backup import BackupHistory, BackupHistoryProbe, ResticRepositoryProbe
from reconciler.facts.codec import Wanted, records
from reconciler.facts.files import PathProbe, PathState
from reconciler.facts.programs import ProgramLocationProbe, ProgramVersionProbe
from reconciler.facts.systemd import UnitStatusProbe
from reconciler.gateway import backup as restic
from reconciler.gateway.addresses import DAEMON_RELOAD
from reconciler.gateway.paths import home, placeholder_host, unit_dir
from reconciler.kinds._backup_units import SERVICE as SERVICE_UNIT
from reconciler.kinds._backup_units import TIMER as TIMER_UNIT
from reconciler.kinds._backup_units import render_service, render_timer
from reconciler.kinds._invocation import invocation_probe, program, unusable_interpreter
from reconciler.kinds._systemd import (
    UnitRenderError,
    UserTimer,
    systemctl,
    timer_upkeep,
    unit_file_action,
    with_block,
)
from reconciler.spec.duration import format_duration
from reconciler.spec.model import Backup, Spec

RESTIC = "backup.restic"
PASSWORD_FILE = "backup.password-file"
ENVIRONMENT_FILE = "backup.environment-file"
REPOSITORY = "backup.repository"
SERVICE = "backup.service"  # the reconciler-backup.service file
UNIT = "backup.timer"  # the reconciler-backup.timer file
STATE = "backup.timer.state"  # the timer enabled and active (a handler)
RELOAD = "backup.daemon-reload"  # after a removal, when no shared reload is planned (a handler)

INIT_TIMEOUT_S = 600.0
INSTALL_RESTIC = (
    "restic is not installed: install it with `apt-get install restic` "
    "(the reconciler never downloads it)"
)


TIMER = UserTimer(SERVICE_UNIT, TIMER_UNIT, "runs the backups")
service_path = TIMER.service_file
timer_path = TIMER.timer_file


def history_path(host: HostContext) -> Path:
    """The spec user's backup records (what `reconciler backup run` appends to as that user)."""
    return home(host) / ".local/state/reconciler" / "backups.jsonl"


def restic_location(host: HostContext) -> ProgramLocationProbe:
    return ProgramLocationProbe.for_user("restic", host)


def restic_version_probe(host: HostContext, found: Facts) -> ProgramVersionProbe:
    return ProgramVersionProbe("restic", found.get(restic_location(host)).path, ("version",))


def secret_probes(backup: Backup, host: HostContext) -> tuple[tuple[str, str, PathProbe], ...]:
    """(address, label, lstat probe) of the password file and the environment file."""
    repo = restic.repository(backup, host)
    out = [(PASSWORD_FILE, "password_file", PathProbe(repo.password_file))]
    if repo.environment_file is not None:
        out.append((ENVIRONMENT_FILE, "environment_file", PathProbe(repo.environment_file)))
    return tuple(out)


def secret_problems(backup: Backup, host: HostContext, found: Facts) -> dict[str, str]:
    """Per secret file's address, why restic may not use it (empty: both are fine)."""
    uid = host.user.uid if host.user is not None else None
    out = {}
    for address, label, probe in secret_probes(backup, host):
        state: PathState = found.get(probe)
        problem = restic.secret_problem(label, probe.path, state.kind, state.mode, state.uid, uid)
        if problem is not None:
            out[address] = problem
    return out


def repository_probe(backup: Backup, host: HostContext, path: str) -> ResticRepositoryProbe:
    repo = restic.repository(backup, host)
    return ResticRepositoryProbe(path, repo.location, repo.password_file, repo.environment_file)


@records(needs=NEEDS_USER)
def _backup_facts(spec: Spec, host: HostContext) -> Wanted:
    """Where restic is and whether the backup units are there, whatever the spec (a later one
    may add or drop `backup`)."""
    return Wanted(programs=("restic",), directories=((unit_dir(host), ("reconciler-backup.",)),))


@register(120)
class BackupKind(Kind):
    name = "backup"
    needs = NEEDS_USER

    def placeholders(self, spec: Spec, host: HostContext) -> Iterable[Action]:
        if spec.backup is not None:
            yield Action(STATE, "create", "the spec backs up")

    def desired(self, spec: Spec, home: Path) -> Mapping[str, Any]:
        """The repository and secret files (resolved), the schedule, what is copied of which
        profiles and how, the retention, and the units that run it."""
        backup = spec.backup
        if backup is None:
            return {}
        host = placeholder_host(spec, home)
        repo = restic.repository(backup, host)
        retention = backup.retention
        return {
            "backup": {
                "repository": repo.location,
                "password_file": str(repo.password_file),
                "environment_file": None
                if repo.environment_file is None
                else str(repo.environment_file),
                "schedule": backup.schedule
                if backup.schedule_interval_s is None
                else format_duration(backup.schedule_interval_s),
                "consistency": backup.consistency,
                "retention": None if retention is None else asdict(retention),
                "profiles": {
                    b.profile: [str(path) for path in b.paths]
                    for b in restic.profile_backups(spec, host)
                },
                "exclude": list(backup.exclude),
                "unit_files": {
                    "service": str(service_path(host)),
                    "timer": str(timer_path(host)),
                },
            }
        }

    def discover(self, spec: Spec, host: HostContext) -> Iterable[Probe[Any]]:
        if spec.backup is None:
            return
        yield restic_location(host)
        for _, _, probe in secret_probes(spec.backup, host):
            yield probe

    def probes(
        self, spec: Spec, host: HostContext, found: Facts = NO_FACTS
    ) -> Iterable[Probe[Any]]:
        yield from TIMER.probes(spec, host)
        if spec.backup is None:
            return
        yield invocation_probe(spec, host)
        yield BackupHistoryProbe(history_path(host))
        version = restic_version_probe(host, found)
        yield version
        if version.path is not None and not secret_problems(spec.backup, host, found):
            yield repository_probe(spec.backup, host, version.path)

    def plan(self, spec: Spec, host: HostContext, facts: Facts) -> KindPlan:
        try:
            if spec.backup is not None:
                return plan_backups(spec, spec.backup, host, facts)
            return plan_removal(spec, host, facts)
        except UnitRenderError as exc:
            raise UnitRenderError(f"{self.name}: {exc}") from exc


# --- with a backup section -----------------------------------------------------------------------


def plan_backups(spec: Spec, backup: Backup, host: HostContext, facts: Facts) -> KindPlan:
    """Prerequisites, the repository, the unit files, the timer handler, the freshness."""
    actions = [*_prerequisites(backup, host, facts)]
    actions.extend(_repository(backup, host, facts, [a.address for a in actions]))
    files = _unit_files(spec, backup, host, facts)
    actions.extend(with_block(action, blocked=block) for action, block in files)

    def timer(view: PlanView) -> KindPlan:
        return _timer_state(facts, view)

    history = facts.get(BackupHistoryProbe(history_path(host)))
    return KindPlan(
        actions=tuple(actions),
        findings=freshness_findings(spec, backup, history),
        handlers=(Handler(STATE, timer),),
    )


def _prerequisites(backup: Backup, host: HostContext, facts: Facts) -> Iterable[Action]:
    """Blocked steps for a missing or too old restic and for unusable secret files."""
    version = facts.get(restic_version_probe(host, facts))
    if version.path is None:
        yield Action(RESTIC, "create", "backups run restic", blocked=INSTALL_RESTIC)
    else:
        found = restic.restic_version(f"restic {version.version}") if version.version else None
        if found is None or found[:2] < restic.MIN_RESTIC:
            needs = ".".join(map(str, restic.MIN_RESTIC))
            yield Action(
                RESTIC,
                "update",
                f"backups need restic {needs} or newer",
                blocked=(
                    f"{version.path} reports {version.version or version.detail}: install "
                    f"restic {needs} or newer (`apt-get install restic`)"
                ),
            )
    for address, problem in secret_problems(backup, host, facts).items():
        label = "password" if address == PASSWORD_FILE else "environment"
        yield Action(
            address, "verify", f"restic reads the repository's {label} file", blocked=problem
        )


def _repository(
    backup: Backup, host: HostContext, facts: Facts, waiting: list[str]
) -> Iterable[Action]:
    """`restic init` when the repository is absent; blocked when it cannot be opened."""
    repo = restic.repository(backup, host)
    where = repo.location
    if waiting:
        # The repository cannot be asked before restic and the secret files are usable.
        yield Action(
            REPOSITORY,
            "verify",
            f"the repository at {where} is checked, and initialised when absent, once restic "
            "and its secret files are usable",
            depends_on=tuple(waiting),
        )
        return
    version = facts.get(restic_version_probe(host, facts))
    assert version.path is not None
    found = facts.get(repository_probe(backup, host, version.path))
    if found.state == "ok":
        return
    if found.state == "absent":
        init = Command(
            (*restic.base_argv(version.path, repo), "init"),
            scope="user",
            mutating=True,
            timeout_s=INIT_TIMEOUT_S,
            stdin="",
            env_file=repo.environment_file,
        )
        yield Action(
            REPOSITORY,
            "create",
            f"there is no restic repository at {where}: initialise it with the password file",
            (RunCommand(init),),
        )
        return
    if found.state == "wrong-password":
        blocked = (
            f"the password in {repo.password_file} does not open the repository at {where} "
            f"({found.detail}): it is never re-initialised; put that repository's password in "
            "the file, or name another repository"
        )
    else:
        blocked = f"cannot open the repository at {where}: {found.detail}"
    yield Action(REPOSITORY, "verify", "backups go to this repository", blocked=blocked)


def _unit_files(
    spec: Spec, backup: Backup, host: HostContext, facts: Facts
) -> list[tuple[Action, str | None]]:
    """The writes of both unit files that are needed, each with why it is blocked."""
    assert host.user is not None
    user = host.user
    invocation = facts.get(invocation_probe(spec, host))
    triggers = (DAEMON_RELOAD, STATE)
    service: Action | None
    if invocation.spec is None:
        service = Action(SERVICE, "create", f"{SERVICE_UNIT} runs `reconciler backup run`")
        service_block: str | None = (
            "the spec was not read from a file, so the backup timer cannot name it"
        )
    else:
        text = render_service(program(invocation, spec.reconcile.command), invocation.spec)
        service = unit_file_action(
            SERVICE,
            service_path(host),
            facts.get(PathProbe(service_path(host), content=True)),
            text,
            user.name,
            user.uid,
            f"{SERVICE_UNIT} runs `reconciler backup run` on the spec",
        )
        service_block = unusable_interpreter(invocation, host, spec.reconcile.command)
    timer = unit_file_action(
        UNIT,
        timer_path(host),
        facts.get(PathProbe(timer_path(host), content=True)),
        render_timer(backup),
        user.name,
        user.uid,
        f"{TIMER_UNIT} runs the backup on the schedule {backup.schedule}",
    )
    return [
        (replace(a, triggers=triggers), b)
        for a, b in ((service, service_block), (timer, None))
        if a is not None
    ]


def _timer_state(facts: Facts, view: PlanView) -> KindPlan:
    """The timer enabled and active; restarted when its file changed under it (the handler)."""
    status = facts.get(UnitStatusProbe(TIMER_UNIT))
    service = facts.get(UnitStatusProbe(SERVICE_UNIT))
    written = view.triggering(STATE)
    changed = any(a.address == UNIT and a.diff is not None for a in written)
    stale = any(s.reachable and s.need_daemon_reload for s in (status, service))
    reload_planned = view.planned(DAEMON_RELOAD) is not None
    upkeep = timer_upkeep(status, TIMER_UNIT, file_changed=changed)
    operations = list(upkeep.operations)
    if (written or stale) and not reload_planned:
        # No shared reload in this plan (a run that wrote the files and stopped before the
        # reload, or a plan without the gateway kinds): reload here, before the timer steps.
        operations.insert(0, systemctl("daemon-reload"))
    if not operations:
        return KindPlan()
    after = [
        *(a.address for a in written),
        *((DAEMON_RELOAD,) if reload_planned else ()),
        *((REPOSITORY,) if view.planned(REPOSITORY) else ()),
    ]
    action = Action(
        STATE,
        "update" if (upkeep.enabled or upkeep.running) else "create",
        TIMER.state_reason(upkeep.enabled, upkeep.running),
        tuple(operations),
        changes=upkeep.changes,
        depends_on=tuple(dict.fromkeys(after)),
    )
    return KindPlan(actions=(action,))


def freshness_findings(spec: Spec, backup: Backup, history: BackupHistory) -> tuple[Finding, ...]:
    """A warning per backed-up profile whose last successful backup is older than twice the
    schedule, or whose backups have only failed so far (pure: the probe read the records and
    the time it read them)."""
    limit = restic.stale_after_s(backup)
    out = []
    for profile in spec.backed_up_profiles():
        record = history.of(profile.name)
        address = f"backup[{profile.name}]"
        age = restic.backup_age_s(record.last_success, history.read_at)
        if age is not None:
            if age > limit:
                out.append(
                    Finding(
                        address,
                        f"the last successful backup of {profile.name} ended "
                        f"{record.last_success}, {_hours(age)} ago: older than twice the "
                        f"schedule ({_hours(limit)}); see `reconciler status` and "
                        "`reconciler logs SPEC --runs`",
                        "warning",
                    )
                )
        elif record.last_failure is not None:
            out.append(
                Finding(
                    address,
                    f"{profile.name} has no successful backup yet: the last attempt, ended "
                    f"{record.last_failure}, failed",
                    "warning",
                )
            )
    return tuple(out)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


# --- without a backup section --------------------------------------------------------------------


def plan_removal(spec: Spec, host: HostContext, facts: Facts) -> KindPlan:
    """Timer stopped and disabled, then both files removed (the shared reload follows)."""
    status = facts.get(UnitStatusProbe(TIMER_UNIT))
    present = [
        (address, path)
        for address, path in ((SERVICE, service_path(host)), (UNIT, timer_path(host)))
        if facts.get(PathProbe(path, content=True)).exists
    ]
    operations = TIMER.teardown(status, timer_file=any(a == UNIT for a, _ in present))
    actions: list[Action] = []
    if operations:
        actions.append(
            Action(
                STATE,
                "delete",
                "the spec has no backup section: no scheduled backups (the repository is kept)",
                operations,
                changes=attribute_changes(
                    {"enabled": False, "active": False},
                    {"enabled": status.enabled, "active": status.running}
                    if status.reachable
                    else {},
                ),
            )
        )
    for address, path in present:
        actions.append(
            Action(
                address,
                "delete",
                f"{path.name} is not wanted (the spec has no backup section)",
                (RemoveFile(path),),
                depends_on=(STATE,) if operations else (),
                triggers=(DAEMON_RELOAD,),
            )
        )
    removed = tuple(address for address, _ in present)

    def reload(view: PlanView) -> KindPlan:
        if not removed or view.planned(DAEMON_RELOAD) is not None:
            return KindPlan()
        forget = Action(
            RELOAD,
            "update",
            f"the user's manager must forget {SERVICE_UNIT} and {TIMER_UNIT}",
            (systemctl("daemon-reload"),),
            depends_on=removed,
        )
        return KindPlan(actions=(forget,))

    return KindPlan(actions=tuple(actions), handlers=(Handler(RELOAD, reload),))
