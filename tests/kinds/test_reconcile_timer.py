"""The reconcile timer kind: rendering (pure), and plan/apply against the fake host."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import engine_on_fakehost as drive
import pytest
from fakehost import FakeHost

from reconciler.app.plan_pass import probe_and_plan
from reconciler.core.action import Action, RemoveFile, RunCommand, WriteFile
from reconciler.core.host import Account, HostContext
from reconciler.core.plan import Plan, build_plan
from reconciler.facts import invocation
from reconciler.facts.files import PathProbe, PathState
from reconciler.facts.systemd import UnitStatus, UnitStatusProbe, unreachable
from reconciler.kinds import linger
from reconciler.kinds.gateway_service import DAEMON_RELOAD
from reconciler.kinds.linger import LingerProbe
from reconciler.kinds.reconcile_timer import (
    RELOAD,
    SERVICE,
    STATE,
    UNIT,
    Invocation,
    ReconcileTimerKind,
    exec_argv,
    invocation_probe,
    render_service,
    render_timer,
    scratch_location,
)
from reconciler.shell.apply import apply_plan
from reconciler.spec.model import (
    GatewayRuntime,
    GitSource,
    Host,
    Node,
    Profile,
    Reconcile,
    Runtime,
    Spec,
    Timer,
)

from .helpers import ROOT, USER, facts, planned

PY = "/opt/r/bin/python"
SPEC_FILE = Path("/srv/spec/vm102.yaml")

EXPECTED_SERVICE = """\
# Written by the reconciler from its spec; local edits are replaced on the next apply.
[Unit]
Description=Reconcile this host with its spec (reconciler apply)

[Service]
Type=oneshot
ExecStart=/opt/r/bin/python -m reconciler apply /srv/spec/vm102.yaml --yes --non-interactive --lock-timeout 300
Environment=PYTHONUNBUFFERED=1
SyslogIdentifier=reconciler
TimeoutStartSec=1h
"""

EXPECTED_TIMER = """\
# Written by the reconciler from its spec; local edits are replaced on the next apply.
[Unit]
Description=Run reconciler apply every 15min

[Timer]
OnBootSec=2min
OnUnitActiveSec=15min
RandomizedDelaySec=1min
Persistent=true

[Install]
WantedBy=timers.target
"""


def timer_spec(
    path: Path | None = SPEC_FILE,
    *,
    source: GitSource | None = None,
    command: tuple[str, ...] | None = None,
    **timer: object,
) -> Spec:
    return Spec(
        host=Host("vm102", "user"),
        runtime=Runtime(node=Node(), gateway=GatewayRuntime("clawdbot")),
        profiles=(Profile("personal", 18789),),
        reconcile=Reconcile(
            timer=Timer(**{"enabled": True, **timer}),  # type: ignore[arg-type]
            source=source,
            command=command,
        ),
        path=path,
    )


# --- rendering -------------------------------------------------------------------------------


def test_units_render_exactly() -> None:
    argv = exec_argv(Invocation(PY, SPEC_FILE, None), None)
    assert render_service(argv) == EXPECTED_SERVICE
    assert render_timer(Timer(enabled=True)) == EXPECTED_TIMER


def test_timer_settings_come_from_the_spec() -> None:
    text = render_timer(Timer(True, interval_s=5400, on_boot_s=30, randomized_delay_s=0))
    assert "OnUnitActiveSec=1h 30min\n" in text
    assert "OnBootSec=30s\n" in text
    assert "RandomizedDelaySec=0s\n" in text


def test_git_source_adds_the_ref_and_needs_the_spec_inside_the_clone() -> None:
    clone = Path("/home/user/hostspec")
    argv = exec_argv(
        Invocation(PY, clone / "hosts/vm102.yaml", clone), GitSource("~/hostspec", "prod")
    )
    assert argv == (
        PY, "-m", "reconciler", "apply", "/home/user/hostspec/hosts/vm102.yaml",
        "--git-ref", "prod", "--yes", "--non-interactive", "--lock-timeout", "300",
    )  # fmt: skip
    from reconciler.kinds.gateway_unit import UnitRenderError

    with pytest.raises(UnitRenderError, match="outside that clone"):
        exec_argv(Invocation(PY, Path("/srv/elsewhere.yaml"), clone), GitSource("~/hostspec"))


def test_paths_with_spaces_and_percent_are_escaped_for_systemd() -> None:
    argv = exec_argv(Invocation(PY, Path("/srv/my specs/100%.yaml"), None), None)
    assert 'ExecStart=/opt/r/bin/python -m reconciler apply "/srv/my specs/100%%.yaml" --yes' in (
        render_service(argv)
    )


def test_the_installed_entry_point_comes_first_then_python_m() -> None:
    installed = Invocation(
        "/opt/reconciler/bin/python", SPEC_FILE, None, "/opt/reconciler/bin/reconciler"
    )
    assert exec_argv(installed, None)[:3] == (
        "/opt/reconciler/bin/reconciler",
        "apply",
        str(SPEC_FILE),
    )
    assert exec_argv(Invocation(PY, SPEC_FILE, None), None)[:4] == (PY, "-m", "reconciler", "apply")


def test_the_spec_command_wins_over_what_runs_the_plan() -> None:
    command = ("/srv/dev/.venv/bin/python", "-m", "reconciler")
    argv = exec_argv(Invocation(PY, SPEC_FILE, None, "/opt/r/bin/reconciler"), None, command)
    assert argv == (
        *command,
        "apply",
        str(SPEC_FILE),
        "--yes",
        "--non-interactive",
        "--lock-timeout",
        "300",
    )


def test_the_probe_finds_the_entry_point_beside_the_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bindir = tmp_path / "venv" / "bin"
    bindir.mkdir(parents=True)
    (bindir / "python").symlink_to(sys.executable)
    monkeypatch.setattr(sys, "executable", str(bindir / "python"))
    spec = timer_spec(tmp_path / "spec.yaml")
    assert invocation_probe(spec, _host()).read(_host()).entry_point is None  # none installed
    script = bindir / "reconciler"
    script.write_text("#!/bin/sh\n")
    assert invocation_probe(spec, _host()).read(_host()).entry_point is None  # not executable
    script.chmod(0o755)
    found = invocation_probe(spec, _host()).read(_host())
    assert found.entry_point == str(script)
    assert (found.scratch or "").startswith("inside the temporary directory")  # tmp_path


def test_scratch_locations_are_temporary_directories_and_git_work_trees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def python_in(*parts: str) -> Path:
        bindir = tmp_path.joinpath(*parts, "bin")
        bindir.mkdir(parents=True)
        return bindir / "python"

    assert scratch_location(python_in("t", ".venv")) is not None  # tmp_path is under /tmp
    # Pretend the test's folder is not temporary, to see the other rule on its own.
    monkeypatch.setattr(invocation, "TEMPORARY", ())
    monkeypatch.setattr(invocation.tempfile, "gettempdir", lambda: "/nonexistent-tmp")
    (tmp_path / "clone" / ".git").mkdir(parents=True)
    assert scratch_location(python_in("clone", "sub", ".venv")) == (
        f"inside the git work tree {(tmp_path / 'clone').resolve()}"
    )
    (tmp_path / "worktree").mkdir()
    (tmp_path / "worktree" / ".git").write_text("gitdir: /elsewhere/.git/worktrees/w\n")
    assert "git work tree" in (scratch_location(python_in("worktree", ".venv")) or "")
    assert scratch_location(python_in("opt", "reconciler")) is None
    # A symlink into a scratch place is that place.
    (tmp_path / "link").symlink_to(tmp_path / "clone" / "sub")
    assert "git work tree" in (
        scratch_location(tmp_path / "link" / ".venv" / "bin" / "python") or ""
    )


def test_the_interpreter_is_sys_executable_unresolved(tmp_path: Path) -> None:
    spec = timer_spec(tmp_path / "link" / ".." / "spec.yaml")
    found = invocation_probe(spec, _host()).read(_host())
    assert found.python == sys.executable  # a venv's bin/python is a symlink: keep it
    assert found.spec == (tmp_path / "spec.yaml").resolve()


# --- planning from facts (pure) ----------------------------------------------------------------


def _host(invoker: Account = USER) -> HostContext:
    return HostContext(hostname="vm102", invoker=invoker, user=USER, user_name="user")


def _facts(
    spec: Spec,
    host: HostContext,
    *,
    service: str | None = None,
    timer: str | None = None,
    timer_status: UnitStatus | None = None,
    python: str = PY,
    lingering: bool = True,
    entry_point: str | None = None,
    scratch: str | None = None,
) -> object:
    unit_dir = Path("/home/user/.config/systemd/user")

    def file(name: str, text: str | None) -> PathState:
        if text is None:
            return PathState(unit_dir / name, "missing")
        return PathState(unit_dir / name, "file", 0o644, 1000, "user", text=text)

    return facts(
        {
            PathProbe(unit_dir / "reconciler.service", content=True): file(
                "reconciler.service", service
            ),
            PathProbe(unit_dir / "reconciler.timer", content=True): file("reconciler.timer", timer),
            UnitStatusProbe("reconciler.service"): UnitStatus(
                "reconciler.service", load_state="loaded"
            ),
            UnitStatusProbe("reconciler.timer"): timer_status or UnitStatus("reconciler.timer"),
            LingerProbe("user"): lingering,
            invocation_probe(spec, host): Invocation(
                python, spec.path and SPEC_FILE, None, entry_point, scratch
            ),
        }
    )


def _plan(spec: Spec, host: HostContext | None = None, **kw: object) -> dict[str, Action]:
    host = host or _host()
    result = planned(ReconcileTimerKind(), spec, host, _facts(spec, host, **kw))  # type: ignore[arg-type]
    assert not result.errors, result.errors
    return {a.address: a for a in result.actions}


ACTIVE = UnitStatus(
    "reconciler.timer", load_state="loaded", active_state="active", unit_file_state="enabled"
)


def test_fresh_host_writes_reloads_enables_and_starts() -> None:
    actions = _plan(timer_spec())
    assert list(actions) == [SERVICE, UNIT, RELOAD, STATE]
    assert [op.content for op in actions[SERVICE].operations if isinstance(op, WriteFile)] == [
        EXPECTED_SERVICE
    ]
    write = actions[UNIT].operations[0]
    assert isinstance(write, WriteFile) and (write.mode, write.owner, write.backup) == (
        0o644,
        "user",
        True,
    )
    assert actions[RELOAD].depends_on == (SERVICE, UNIT, DAEMON_RELOAD)
    assert [op.command.argv for op in actions[STATE].operations if isinstance(op, RunCommand)] == [
        ("systemctl", "--user", "enable", "reconciler.timer"),
        ("systemctl", "--user", "start", "reconciler.timer"),
    ]
    assert set(actions[STATE].depends_on) == {SERVICE, UNIT, RELOAD}


def test_converged_host_plans_nothing() -> None:
    assert (
        _plan(timer_spec(), service=EXPECTED_SERVICE, timer=EXPECTED_TIMER, timer_status=ACTIVE)
        == {}
    )


def test_a_new_interval_rewrites_the_timer_and_restarts_it() -> None:
    actions = _plan(
        timer_spec(interval_s=600),
        service=EXPECTED_SERVICE,
        timer=EXPECTED_TIMER,
        timer_status=ACTIVE,
    )
    assert list(actions) == [UNIT, RELOAD, STATE]
    assert "+OnUnitActiveSec=10min" in (actions[UNIT].diff or "")
    assert [
        op.command.argv[-2:] for op in actions[STATE].operations if isinstance(op, RunCommand)
    ] == [("restart", "reconciler.timer")]


def test_another_interpreter_rewrites_only_the_service() -> None:
    actions = _plan(
        timer_spec(),
        service=EXPECTED_SERVICE,
        timer=EXPECTED_TIMER,
        timer_status=ACTIVE,
        python="/usr/bin/python3",
    )
    assert list(actions) == [SERVICE, RELOAD]


def test_unreachable_manager_waits_for_linger_or_is_blocked() -> None:
    down = unreachable("reconciler.timer", "the user's systemd manager is not running")
    waits = _plan(timer_spec(), timer_status=down, lingering=False)
    assert linger.ADDRESS in waits[STATE].depends_on and waits[STATE].blocked is None
    blocked = _plan(replace(timer_spec(), linger=None), timer_status=down)
    assert "not running" in (blocked[STATE].blocked or "")
    assert blocked[SERVICE].blocked is None  # the files can still be written


def test_root_planning_from_its_own_venv_is_blocked() -> None:
    root = HostContext(hostname="vm102", invoker=ROOT, user=USER, user_name="user")
    actions = _plan(timer_spec(), host=root, python="/root/venv/bin/python")
    assert "cannot use" in (actions[SERVICE].blocked or "")


def test_a_scratch_interpreter_is_refused_unless_the_spec_names_the_command() -> None:
    scratch = "inside the git work tree /home/user/src/reconciler"
    python = "/home/user/src/reconciler/.venv/bin/python"
    actions = _plan(timer_spec(), python=python, scratch=scratch)
    assert actions[SERVICE].blocked is not None
    assert f"runs from {python}, {scratch}" in actions[SERVICE].blocked
    assert "reconcile.command" in actions[SERVICE].blocked
    assert SERVICE in actions[STATE].depends_on  # never started without its service file
    # Converged files bound to the scratch interpreter earlier: nothing new is bound, no block.
    assert (
        _plan(
            timer_spec(),
            service=EXPECTED_SERVICE,
            timer=EXPECTED_TIMER,
            timer_status=ACTIVE,
            scratch=scratch,
        )
        == {}
    )

    command = (python, "-m", "reconciler")
    chosen = _plan(timer_spec(command=command), python=python, scratch=scratch)
    assert chosen[SERVICE].blocked is None
    (write,) = [op for op in chosen[SERVICE].operations if isinstance(op, WriteFile)]
    assert f"ExecStart={python} -m reconciler apply {SPEC_FILE} --yes" in write.content


def test_the_installed_entry_point_is_what_the_timer_runs() -> None:
    actions = _plan(
        timer_spec(),
        python="/opt/reconciler/bin/python",
        entry_point="/opt/reconciler/bin/reconciler",
    )
    (write,) = [op for op in actions[SERVICE].operations if isinstance(op, WriteFile)]
    assert f"ExecStart=/opt/reconciler/bin/reconciler apply {SPEC_FILE} --yes" in write.content
    assert actions[SERVICE].blocked is None


def test_spec_without_a_file_cannot_be_named() -> None:
    actions = _plan(timer_spec(path=None))
    assert "not read from a file" in (actions[SERVICE].blocked or "")


# --- against the fake host -------------------------------------------------------------------


class TimerHost:
    def __init__(self, tmp_path: Path) -> None:
        self.fake = FakeHost(tmp_path / "fake")
        self.fake.set_linger(self.fake.user, True)
        self.host = drive.host_context(self.fake, "user")
        self.runner = drive.host_runner(self.fake, self.host)
        self.spec_file = tmp_path / "vm102.yaml"
        self.spec_file.write_text("# the spec\n")

    def plan(self, spec: Spec) -> Plan:
        return probe_and_plan(spec, self.host, self.runner, (ReconcileTimerKind(),)).plan

    def converge(self, spec: Spec) -> None:
        plan = self.plan(spec)
        result = apply_plan(plan, self.runner)
        assert result.ok, [(o.action.address, o.outcome, o.detail) for o in result.outcomes]
        after = self.plan(spec)
        assert after.actions == (), [a.address for a in after.actions]


def test_install_change_and_remove_on_the_fake_host(tmp_path: Path) -> None:
    th = TimerHost(tmp_path)
    # The tests run from a clone (or /tmp): a scratch interpreter, so the spec says to use it.
    command = (sys.executable, "-m", "reconciler")
    spec = timer_spec(th.spec_file, command=command)
    th.converge(spec)
    unit_dir = th.fake.unit_dir
    service = (unit_dir / "reconciler.service").read_text()
    assert (
        f"ExecStart={sys.executable} -m reconciler apply {th.spec_file.resolve()} --yes" in service
    )
    assert (unit_dir / "reconciler.timer").read_text() == EXPECTED_TIMER
    assert (unit_dir / "reconciler.timer").stat().st_mode & 0o777 == 0o644
    assert th.fake.enabled_links() == ["timers.target.wants/reconciler.timer"]
    assert th.fake.unit_runtime("reconciler.timer")["active"] == "active"
    verbs = [c["argv"][2] for c in th.fake.mutating_calls() if c["tool"] == "systemctl"]
    assert verbs == ["daemon-reload", "enable", "start"]

    # a converged host: the second apply calls nothing that changes the host
    th.fake.clear_calls()
    th.converge(spec)
    assert th.fake.mutating_calls() == []

    th.converge(
        replace(spec, reconcile=Reconcile(timer=Timer(True, interval_s=300), command=command))
    )
    assert "OnUnitActiveSec=5min" in (unit_dir / "reconciler.timer").read_text()

    th.fake.clear_calls()
    th.converge(replace(spec, reconcile=Reconcile(timer=Timer(False))))
    assert not (unit_dir / "reconciler.service").exists()
    assert not (unit_dir / "reconciler.timer").exists()
    assert th.fake.enabled_links() == []
    assert th.fake.unit_runtime("reconciler.timer").get("active", "inactive") == "inactive"
    verbs = [c["argv"][2] for c in th.fake.mutating_calls() if c["tool"] == "systemctl"]
    assert verbs == ["disable", "stop", "daemon-reload"]


def test_disabled_and_absent_plans_nothing(tmp_path: Path) -> None:
    th = TimerHost(tmp_path)
    assert th.plan(replace(timer_spec(th.spec_file), reconcile=Reconcile())).actions == ()


def test_disabled_removes_only_files_that_are_present(tmp_path: Path) -> None:
    th = TimerHost(tmp_path)
    th.fake.add_unit_file("reconciler.service", EXPECTED_SERVICE)
    plan = th.plan(replace(timer_spec(th.spec_file), reconcile=Reconcile()))
    by = {a.address: a for a in plan.actions}
    assert set(by) == {SERVICE, RELOAD}
    assert isinstance(by[SERVICE].operations[0], RemoveFile)


def test_a_directory_where_the_timer_belongs_is_a_plan_error() -> None:
    host = _host()
    spec = timer_spec()
    values = dict(_facts(spec, host).values)  # type: ignore[attr-defined]
    path = Path("/home/user/.config/systemd/user/reconciler.timer")
    values[PathProbe(path, content=True)] = PathState(path, "directory", 0o755, 1000, "user")
    # A kind's plan errors reach the plan through the planner's one error channel.
    result = build_plan(spec, host, facts(values), [ReconcileTimerKind()])
    assert result.actions == () and "is a directory" in result.errors[0]


def test_disabling_with_the_manager_down_disables_before_removing() -> None:
    down = unreachable("reconciler.timer", "the user's systemd manager is not running")
    spec = replace(timer_spec(), reconcile=Reconcile(), linger=None)
    actions = _plan(spec, service=EXPECTED_SERVICE, timer=EXPECTED_TIMER, timer_status=down)
    assert list(actions) == [STATE, SERVICE, UNIT, RELOAD]
    assert [
        op.command.argv[-2:] for op in actions[STATE].operations if isinstance(op, RunCommand)
    ] == [("disable", "reconciler.timer")]
    assert actions[STATE].blocked and actions[SERVICE].depends_on == (STATE,)
