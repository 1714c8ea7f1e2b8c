"""The backup kind: plan and apply on the fake host with the fake restic (real restic 0.14.0's
output and exit codes, recorded in tests/data/probes/restic/), and the freshness findings."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import engine_on_fakehost as drive
import pytest
from click.testing import CliRunner
from fakehost import FakeHost

from reconciler import cli as cli_module
from reconciler.app.context import AppContext
from reconciler.app.plan_pass import probe_and_plan
from reconciler.core.action import RunCommand, WriteFile
from reconciler.core.plan import Plan
from reconciler.facts.backup import BackupHistory, ProfileBackups, parse_history
from reconciler.gateway.backup import classify_repository
from reconciler.kinds.backup import (
    ENVIRONMENT_FILE,
    PASSWORD_FILE,
    RELOAD,
    REPOSITORY,
    RESTIC,
    SERVICE,
    STATE,
    UNIT,
    BackupKind,
    freshness_findings,
)
from reconciler.shell.apply import apply_plan
from reconciler.spec.model import (
    Backup,
    GatewayRuntime,
    Host,
    Node,
    Profile,
    Reconcile,
    Runtime,
    Spec,
)

PROBES = Path(__file__).parents[1] / "data/probes/restic"
PASSWORD = "pw-correct-horse-battery-staple-4711"


def backup_spec(spec_file: Path, **backup: object) -> Spec:
    fields: dict[str, object] = {
        "repository": "~/backups/gateway",
        "password_file": "~/.config/restic/password",
        "schedule": "6h",
        "schedule_interval_s": 6 * 3600,
    }
    fields.update(backup)
    return Spec(
        host=Host("vm102", "user"),
        runtime=Runtime(node=Node(), gateway=GatewayRuntime("clawdbot")),
        profiles=(Profile("ops", 18809), Profile("personal", 18789)),
        # The tests run from a clone: a scratch interpreter, so the spec names the command.
        reconcile=Reconcile(command=(sys.executable, "-m", "reconciler")),
        backup=Backup(**fields),  # type: ignore[arg-type]
        path=spec_file,
    )


class BackupHost:
    def __init__(self, tmp_path: Path, *, restic: bool = True) -> None:
        self.fake = FakeHost(tmp_path / "fake")
        self.fake.set_linger(self.fake.user, True)
        self.fake.set_restic(restic)
        self.host = drive.host_context(self.fake, "user")
        self.runner = drive.host_runner(self.fake, self.host)
        self.spec_file = tmp_path / "vm102.yaml"
        self.spec_file.write_text("# the spec\n")
        self.password_file = self.fake.home / ".config/restic/password"
        self.repo = self.fake.home / "backups/gateway"

    def write_password(self, text: str = PASSWORD, mode: int = 0o600) -> None:
        self.password_file.parent.mkdir(parents=True, exist_ok=True)
        self.password_file.write_text(text + "\n")
        self.password_file.chmod(mode)

    def plan(self, spec: Spec) -> Plan:
        return probe_and_plan(spec, self.host, self.runner, (BackupKind(),)).plan

    def converge(self, spec: Spec) -> Plan:
        plan = self.plan(spec)
        result = apply_plan(plan, self.runner)
        assert result.ok, [(o.action.address, o.outcome, o.detail) for o in result.outcomes]
        after = self.plan(spec)
        assert after.actions == (), [(a.address, a.blocked) for a in after.actions]
        return plan


def actions(plan: Plan) -> dict[str, object]:
    return {a.address: a for a in plan.actions}


def test_fresh_host_initialises_the_repository_and_installs_the_timer(tmp_path: Path) -> None:
    bh = BackupHost(tmp_path)
    bh.write_password()
    spec = backup_spec(bh.spec_file)
    plan = bh.plan(spec)
    by = {a.address: a for a in plan.actions}
    assert list(by) == [REPOSITORY, SERVICE, UNIT, STATE]
    init = by[REPOSITORY].operations[0]
    assert isinstance(init, RunCommand)
    assert init.command.argv[1:] == (
        "--repo",
        str(bh.repo),
        "--password-file",
        str(bh.password_file),
        "init",
    )
    assert init.command.scope == "user" and init.command.mutating
    assert all(isinstance(op, WriteFile) for a in (by[SERVICE], by[UNIT]) for op in a.operations)
    assert by[UNIT].diff is not None and "+Persistent=true" in by[UNIT].diff
    assert REPOSITORY in by[STATE].depends_on and UNIT in by[STATE].depends_on

    bh.converge(spec)
    assert (bh.repo / "config").exists()
    service = (bh.fake.unit_dir / "reconciler-backup.service").read_text()
    assert f"backup run {bh.spec_file.resolve()}" in service
    assert bh.fake.enabled_links() == ["timers.target.wants/reconciler-backup.timer"]
    assert bh.fake.unit_runtime("reconciler-backup.timer")["active"] == "active"
    calls = [c["argv"] for c in bh.fake.mutating_calls()]
    assert [c[1:] for c in calls if c[0] == "systemctl"] == [
        ["--user", "daemon-reload"],
        ["--user", "enable", "reconciler-backup.timer"],
        ["--user", "start", "reconciler-backup.timer"],
    ]
    assert [c[-1] for c in calls if c[0].endswith("restic")] == ["init"]

    # Converged: a second apply runs nothing that changes the host.
    bh.fake.clear_calls()
    bh.converge(spec)
    assert bh.fake.mutating_calls() == []

    # A new schedule rewrites the timer and restarts it; the repository is left alone.
    bh.fake.clear_calls()
    plan = bh.converge(replace(spec, backup=replace(spec.backup, schedule_interval_s=3600)))
    assert [a.address for a in plan.actions] == [UNIT, STATE]
    verbs = [c["argv"][2] for c in bh.fake.mutating_calls()]
    assert verbs == ["daemon-reload", "restart"]


def _cli(bh: BackupHost, spec: Spec, *args: str) -> Any:
    """The real CLI with the spec and the fake host injected."""
    app = AppContext(
        spec_loader=lambda path: spec,
        discover_host=lambda s: bh.host,
        make_runner=lambda h, mutating: (
            drive.host_runner(bh.fake, h) if mutating else drive.read_only_runner(bh.fake, h)
        ),
    )
    return CliRunner().invoke(cli_module.cli, [*args, "--host-check=off"], obj=app)


def test_the_password_never_reaches_a_plan_a_snapshot_or_an_argv(tmp_path: Path) -> None:
    bh = BackupHost(tmp_path)
    bh.write_password()
    spec = backup_spec(bh.spec_file)
    saved = tmp_path / "plan.json"
    snapshot = tmp_path / "snapshot.json"
    outputs = [
        _cli(bh, spec, "plan", "spec.yaml", "--out", str(saved)),
        _cli(bh, spec, "plan", "spec.yaml", "--format", "json"),
        _cli(bh, spec, "plan", "spec.yaml", "--format", "markdown"),
        _cli(bh, spec, "probe", "spec.yaml", "--out", str(snapshot)),
    ]
    assert "restic" in outputs[0].output and "init" in outputs[0].output
    assert "ResticRepository" in snapshot.read_text()
    against = _cli(bh, spec, "plan", "spec.yaml", "--against", str(snapshot))
    assert f"{REPOSITORY}" in against.output, against.output
    for shown in (
        *(r.output for r in (*outputs, against)),
        saved.read_text(),
        snapshot.read_text(),
    ):
        assert PASSWORD not in shown
    bh.converge(spec)
    assert PASSWORD not in bh.fake.calls_file.read_text()
    for unit in bh.fake.unit_dir.glob("reconciler-backup.*"):
        assert PASSWORD not in unit.read_text()


def test_missing_restic_is_blocked_and_never_downloaded(tmp_path: Path) -> None:
    bh = BackupHost(tmp_path, restic=False)
    bh.write_password()
    plan = bh.plan(backup_spec(bh.spec_file))
    by = actions(plan)
    assert "apt-get install restic" in (by[RESTIC].blocked or "")  # type: ignore[attr-defined]
    assert "never downloads" in (by[RESTIC].blocked or "")  # type: ignore[attr-defined]
    # The repository cannot be asked yet: its step waits, blocked with restic's reason.
    assert by[REPOSITORY].operations == ()  # type: ignore[attr-defined]
    assert by[REPOSITORY].blocked  # type: ignore[attr-defined]
    assert by[STATE].blocked  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (None, "does not exist: create it (mode 0600)"),
        (0o644, "has mode 0644: others may read it; run `chmod 600"),
        ("symlink", "is not a regular file (symlinks are refused)"),
    ],
)
def test_unusable_password_files_are_blocked_at_plan_time(
    tmp_path: Path, setup: object, expected: str
) -> None:
    bh = BackupHost(tmp_path)
    if setup == 0o644:
        bh.write_password(mode=0o644)
    elif setup == "symlink":
        target = tmp_path / "elsewhere"
        target.write_text(PASSWORD + "\n")
        bh.password_file.parent.mkdir(parents=True)
        bh.password_file.symlink_to(target)
    plan = bh.plan(backup_spec(bh.spec_file))
    by = {a.address: a for a in plan.actions}
    assert expected in (by[PASSWORD_FILE].blocked or "")
    assert by[REPOSITORY].blocked and not by[REPOSITORY].operations
    # restic never ran: the password file was not usable.
    assert not [c for c in bh.fake.calls() if c["tool"] == "restic" and "cat" in c["argv"]]


def test_a_password_file_of_another_user_is_blocked(tmp_path: Path) -> None:
    bh = BackupHost(tmp_path)
    bh.write_password()
    host = replace(bh.host, user=replace(bh.host.user, uid=bh.host.user.uid + 1))  # type: ignore[type-var]
    plan = probe_and_plan(backup_spec(bh.spec_file), host, bh.runner, (BackupKind(),)).plan
    by = {a.address: a for a in plan.actions}
    assert "not the spec's user" in (by[PASSWORD_FILE].blocked or "")


def test_the_environment_file_follows_the_same_rules(tmp_path: Path) -> None:
    bh = BackupHost(tmp_path)
    bh.write_password()
    env = bh.fake.home / ".config/restic/env"
    env.write_text("AWS_SECRET_ACCESS_KEY=x\n")
    env.chmod(0o640)
    plan = bh.plan(backup_spec(bh.spec_file, environment_file="~/.config/restic/env"))
    by = {a.address: a for a in plan.actions}
    assert "has mode 0640" in (by[ENVIRONMENT_FILE].blocked or "")
    env.chmod(0o600)
    plan = bh.plan(backup_spec(bh.spec_file, environment_file="~/.config/restic/env"))
    init = {a.address: a for a in plan.actions}[REPOSITORY].operations[0]
    assert isinstance(init, RunCommand) and init.command.env_file == env


def test_a_wrong_password_is_blocked_never_reinitialised(tmp_path: Path) -> None:
    bh = BackupHost(tmp_path)
    bh.write_password()
    spec = backup_spec(bh.spec_file)
    bh.converge(spec)
    config = (bh.repo / "config").read_bytes()
    bh.write_password("another-password")
    plan = bh.plan(spec)
    by = {a.address: a for a in plan.actions}
    assert list(by) == [REPOSITORY]
    assert by[REPOSITORY].operations == ()
    blocked = by[REPOSITORY].blocked or ""
    assert "does not open the repository" in blocked and "never re-initialised" in blocked
    assert "Fatal: wrong password or no key found" in blocked
    bh.fake.clear_calls()
    apply_plan(plan, bh.runner)
    assert bh.fake.mutating_calls() == []
    assert (bh.repo / "config").read_bytes() == config


def test_an_unreachable_repository_is_blocked_not_initialised(tmp_path: Path) -> None:
    bh = BackupHost(tmp_path)
    bh.write_password()
    plan = bh.plan(backup_spec(bh.spec_file, repository="rest:http://127.0.0.1:1/gateway/"))
    by = {a.address: a for a in plan.actions}
    assert by[REPOSITORY].operations == ()
    assert "connection refused" in (by[REPOSITORY].blocked or "")


def test_dropping_the_backup_section_removes_the_timer_keeps_the_repository(
    tmp_path: Path,
) -> None:
    bh = BackupHost(tmp_path)
    bh.write_password()
    spec = backup_spec(bh.spec_file)
    bh.converge(spec)
    bh.fake.clear_calls()
    plan = bh.converge(replace(spec, backup=None))
    assert [a.address for a in plan.actions] == [STATE, SERVICE, UNIT, RELOAD]
    assert not (bh.fake.unit_dir / "reconciler-backup.timer").exists()
    assert not (bh.fake.unit_dir / "reconciler-backup.service").exists()
    assert (bh.repo / "config").exists()
    assert bh.fake.enabled_links() == []
    verbs = [c["argv"][2] for c in bh.fake.mutating_calls() if c["tool"] == "systemctl"]
    assert verbs == ["disable", "stop", "daemon-reload"]
    # Without backups and without units: nothing to do, nothing probed with restic.
    bh.fake.clear_calls()
    assert bh.plan(replace(spec, backup=None)).actions == ()
    assert not [c for c in bh.fake.calls() if c["tool"] == "restic"]


def test_a_failed_init_is_recovered_by_the_next_apply(tmp_path: Path) -> None:
    bh = BackupHost(tmp_path)
    bh.write_password()
    spec = backup_spec(bh.spec_file)
    bh.fake.fail_mutating_call(1)  # restic init
    result = apply_plan(bh.plan(spec), bh.runner)
    assert not result.ok
    assert not (bh.repo / "config").exists()
    bh.converge(spec)
    assert (bh.repo / "config").exists()


# --- the fake restic prints what the real one printed --------------------------------------------


def test_the_fake_prints_real_restic_outputs(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path / "fake")
    fake.set_restic(True)
    version = fake.run("restic", "version")
    assert version.stdout == (PROBES / "version.txt").read_text()
    password = fake.home / "pw"
    password.write_text("pw-right\n")
    repo = str(fake.home / "backups/gateway")
    base = ("restic", "--repo", repo, "--password-file", str(password))
    absent = fake.run(*base, "--no-lock", "--no-cache", "cat", "config")
    recorded = (PROBES / "cat-config-absent.stderr").read_text()
    assert (absent.returncode, absent.stderr) == (1, recorded.replace("/home/user", str(fake.home)))
    created = fake.run(*base, "init")
    assert created.returncode == 0
    first = (PROBES / "init.stdout").read_text().splitlines()[0]
    assert created.stdout.splitlines()[0][:26] == first[:26] == "created restic repository "
    assert created.stdout.splitlines()[1:] == (PROBES / "init.stdout").read_text().splitlines()[1:]
    again = fake.run(*base, "init")
    recorded = (PROBES / "init-exists.stderr").read_text()
    assert (again.returncode, again.stderr) == (1, recorded.replace("/home/user", str(fake.home)))
    password.write_text("wrong\n")
    wrong = fake.run(*base, "cat", "config")
    expected = (PROBES / "cat-config-wrong-password.stderr").read_text()
    assert (wrong.returncode, wrong.stderr) == (1, expected)


@pytest.mark.parametrize(
    ("name", "state"),
    [
        ("cat-config-absent.stderr", "absent"),
        ("cat-config-wrong-password.stderr", "wrong-password"),
        ("cat-config-rest-unreachable.stderr", "unreachable"),
    ],
)
def test_recorded_restic_answers_classify(name: str, state: str) -> None:
    assert classify_repository(1, (PROBES / name).read_text())[0] == state
    assert classify_repository(0, "")[0] == "ok"


# --- freshness (pure) ----------------------------------------------------------------------------


def _at(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def test_a_backup_older_than_twice_the_schedule_is_a_warning(tmp_path: Path) -> None:
    spec = backup_spec(tmp_path / "s.yaml")
    history = BackupHistory(
        _at("2026-11-29T12:00:00+00:00"),
        (
            ProfileBackups("ops", last_success="2026-11-29T00:30:00+00:00"),  # 11.5 h: fine
            ProfileBackups("personal", last_success="2026-11-28T23:00:00+00:00"),  # 13 h
        ),
    )
    findings = freshness_findings(spec, spec.backup, history)  # type: ignore[arg-type]
    assert [(f.address, f.severity) for f in findings] == [("backup[personal]", "warning")]
    assert "13.0 h ago: older than twice the schedule (12.0 h)" in findings[0].message


def test_backups_that_only_failed_are_a_warning_and_none_yet_is_not(tmp_path: Path) -> None:
    spec = backup_spec(tmp_path / "s.yaml")
    history = parse_history(
        "\n".join(
            [
                json.dumps(
                    {
                        "kind": "backup",
                        "profile": "ops",
                        "end": "2026-11-29T11:00:00+00:00",
                        "ok": False,
                    }
                ),
                json.dumps({"kind": "verify", "profile": "personal", "end": "x", "ok": True}),
                "not json",
            ]
        ),
        _at("2026-11-29T12:00:00+00:00"),
    )
    findings = freshness_findings(spec, spec.backup, history)  # type: ignore[arg-type]
    assert [f.address for f in findings] == ["backup[ops]"]
    assert "no successful backup yet" in findings[0].message


def test_the_plan_warns_from_the_recorded_history(tmp_path: Path) -> None:
    bh = BackupHost(tmp_path)
    bh.write_password()
    spec = backup_spec(bh.spec_file)
    records = bh.fake.home / ".local/state/reconciler/backups.jsonl"
    records.parent.mkdir(parents=True)
    line = {"kind": "backup", "profile": "ops", "end": "2020-01-01T00:00:00+00:00", "ok": True}
    records.write_text(json.dumps(line) + "\n")
    os.chmod(records, 0o600)
    plan = bh.plan(spec)
    assert [f.address for f in plan.findings if f.severity == "warning"] == ["backup[ops]"]
