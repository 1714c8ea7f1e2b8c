"""The unattended commands end to end on the fake host: the apply wrapper (with a do_apply
limited to a few kinds), and `status`, `suspend` and `resume` through the CLI, the host, runner
and state directory injected through the AppContext."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakehost import FakeHost

from reconciler.app.context import AppContext
from reconciler.app.plan_pass import probe_and_plan
from reconciler.app.unattended import unattended_apply
from reconciler.cli import cli
from reconciler.core.host import Account, HostContext
from reconciler.core.kind import ResourceKind
from reconciler.core.plan import Plan
from reconciler.kinds.linger import LingerKind
from reconciler.kinds.reconcile_timer import ReconcileTimerKind
from reconciler.shell.apply import ActionOutcome, converge
from reconciler.shell.runner import HostRunner
from reconciler.spec.model import Spec
from reconciler.unattended.logs import ActionLog
from reconciler.unattended.root_steps import block_root_steps
from reconciler.unattended.runs import ApplyOutcome, outcome_of, read_records

SPEC = """\
apiVersion: reconciler/v1
host:
  name: vm102
  user: user
linger: {linger}
profiles:
  personal:
    port: 18789
reconcile:
  timer:
    enabled: true
    interval: 5min
  # The tests run from a clone: name an installed program, as a host would have one.
  command: [/opt/reconciler/bin/reconciler]
"""


def wired_do_apply(
    host: HostContext, runner: HostRunner, kinds: Sequence[ResourceKind], non_interactive: bool
) -> object:
    """reconciler/app/applying.apply_spec for these kinds only (minus the human rendering and
    the confirmation prompt)."""

    def do_apply(spec: Spec, log: ActionLog | None) -> ApplyOutcome:
        root = f"sudo {sys.executable} -m reconciler apply {spec.path}"

        def probe() -> Plan:
            plan = probe_and_plan(spec, host, runner, kinds).plan
            return block_root_steps(plan, host, apply_as_root=root) if non_interactive else plan

        plan = probe()
        if plan.errors:
            return outcome_of(plan, None)
        if not plan.runnable:
            if log is not None:  # nothing runs, but blocked steps are still worth a line each
                for action in plan.blocked:
                    log.action(ActionOutcome(action, "blocked", action.blocked or ""))
            return outcome_of(plan, None)
        return outcome_of(plan, converge(plan, probe, runner, log.action if log else None))

    return do_apply


def fake_context(fake: FakeHost, uid: int) -> HostContext:
    account = Account(fake.user, uid, uid, fake.home)
    return HostContext(
        hostname="vm102",
        invoker=account,
        user=account,
        user_name=fake.user,
        linger_dir=fake.linger_dir,
        proc_root=fake.proc_root,
        systemd_dir=fake.systemd_dir,
        search_path=tuple(fake.env["PATH"].split(":")),
    )


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "reconciler"


def test_timer_run_installs_the_timer_and_status_shows_it(
    tmp_path: Path, state: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeHost(tmp_path / "fake")
    host = fake_context(fake, os.getuid())  # our own uid: file writes need no privilege switch
    runner = HostRunner(host, env=fake.env)
    spec = tmp_path / "vm102.yaml"
    spec.write_text(SPEC.format(linger="null"))
    do_apply = wired_do_apply(host, runner, (ReconcileTimerKind(),), non_interactive=True)

    code = unattended_apply(
        spec, lock_timeout=0, non_interactive=True, log_format="text", do_apply=do_apply
    )  # type: ignore[arg-type]
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("applied create reconcile.timer.service: ")
    assert lines[-1].startswith("run converged: 4 applied, 0 failed, 0 blocked, 0 skipped; spec ")
    assert fake.unit_runtime("reconciler.timer")["active"] == "active"

    # the next run finds nothing to do, and says so in one line
    assert (
        unattended_apply(
            spec, lock_timeout=0, non_interactive=True, log_format="json", do_apply=do_apply
        )
        == 0
    )  # type: ignore[arg-type]
    (summary,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (summary["event"], summary["result"], summary["applied"]) == ("summary", "converged", 0)
    first, second = read_records(state)
    assert first.drift == (
        "reconcile.timer.service",
        "reconcile.timer.unit",
        "reconcile.timer.daemon-reload",
        "reconcile.timer.state",
    )
    assert second.drift == () and second.spec_sha256 == first.spec_sha256

    # status, with the host and runner injected through the context
    app = AppContext(
        discover_host=lambda spec: host,
        make_runner=lambda host, mutating: HostRunner(host, env=fake.env),
    )
    text = CliRunner().invoke(cli, ["status", str(spec)], obj=app)
    assert text.exit_code == 0, text.output
    assert "Last run:" in text.output and "converged (0 applied" in text.output
    assert re.search(r"^Drift found: +none$", text.output, re.M)
    assert re.search(r"^Timer: +installed, enabled, active$", text.output, re.M)
    doc = json.loads(CliRunner().invoke(cli, ["status", "--json", str(spec)], obj=app).output)
    assert doc["timer"]["installed"] and doc["last_success"]["result"] == "converged"
    assert doc["suspended"] is None and doc["runs"] == 2


def test_unprivileged_run_blocks_root_steps_and_is_not_converged(
    tmp_path: Path, state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Issue 12 #3: this run used to be recorded "converged" and exit 0; the host still lacks
    # linger, so it does not match the spec: "not-converged", exit 2 (nothing failed).
    fake = FakeHost(tmp_path / "fake")
    host = fake_context(fake, 4242)  # not root
    runner = HostRunner(host, env=fake.env)
    spec = tmp_path / "vm102.yaml"
    spec.write_text(SPEC.format(linger="true"))
    do_apply = wired_do_apply(host, runner, (LingerKind(),), non_interactive=True)
    assert (
        unattended_apply(
            spec, lock_timeout=0, non_interactive=True, log_format="text", do_apply=do_apply
        )
        == 2
    )  # type: ignore[arg-type]
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("blocked create linger: ")
    assert out[0].endswith("run once as root: sudo loginctl enable-linger user")
    assert out[-1].startswith("run not-converged: 0 applied, 0 failed, 1 blocked")
    (record,) = read_records(state)
    assert (record.result, record.blocked, record.applied) == ("not-converged", 1, 0)
    assert record.reason.startswith("1 step blocked: ") and "(linger)" in record.reason
    assert fake.mutating_calls() == []


def test_suspend_and_resume_commands(state: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["suspend", "--reason", "upgrading node"])
    assert result.exit_code == 0 and "suspended since" in result.output
    assert json.loads((state / "suspended.json").read_text())["reason"] == "upgrading node"
    result = runner.invoke(cli, ["resume"])
    assert (
        result.exit_code == 0 and "Resumed" in result.output and "upgrading node" in result.output
    )
    assert "were not suspended" in runner.invoke(cli, ["resume"]).output


def test_a_second_suspend_keeps_the_first_unless_replaced(tmp_path: Path) -> None:
    clock = iter(["2026-01-26T10:00:00+00:00", "2026-01-26T11:00:00+00:00"])
    app = AppContext(
        state_dir=lambda: tmp_path / "state",
        now=lambda: datetime.fromisoformat(next(clock)),
    )
    runner = CliRunner()
    first = runner.invoke(cli, ["suspend", "--reason", "upgrading node"], obj=app)
    assert first.exit_code == 0, first.output
    second = runner.invoke(cli, ["suspend", "--reason", "other"], obj=app)
    assert second.exit_code == 0
    assert "already suspended since 2026-01-26T10:00:00+00:00 by " in second.output
    assert ": upgrading node; kept that suspension (pass --replace" in second.output
    saved = json.loads((tmp_path / "state" / "suspended.json").read_text())
    assert saved["reason"] == "upgrading node"
    third = runner.invoke(cli, ["suspend", "--reason", "other", "--replace"], obj=app)
    assert third.exit_code == 0 and "(replaced: suspended since 2026-01-26T10:00:00" in third.output
    saved = json.loads((tmp_path / "state" / "suspended.json").read_text())
    assert (saved["reason"], saved["since"]) == ("other", "2026-01-26T11:00:00+00:00")


def test_status_of_a_missing_spec_is_an_error(tmp_path: Path, state: Path) -> None:
    result = CliRunner().invoke(cli, ["status", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"error: {tmp_path / 'nope.yaml'} does not exist: name the spec the timer applies\n"
    )


def test_status_with_a_damaged_run_record_says_which_line(tmp_path: Path, state: Path) -> None:
    spec = tmp_path / "vm102.yaml"
    spec.write_text(SPEC.format(linger="null"))
    state.mkdir(parents=True)
    (state / "runs.jsonl").write_text(
        '{"start": "2026-01-26T10:00:00+00:00", "end": 1769421600, "result": "converged"}\n'
    )
    result = CliRunner().invoke(cli, ["status", str(spec)], obj=AppContext(state_dir=lambda: state))
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"error: {state / 'runs.jsonl'}, line 1: field 'end' must")
    assert "fix or delete that line" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize(
    "command", [["status", "SPEC"], ["suspend"], ["resume"], ["apply", "SPEC"]]
)
def test_a_file_where_the_state_dir_must_be_is_a_clear_error(
    tmp_path: Path, command: list[str]
) -> None:
    # Issue 11 #13: this printed "suspended since ? by ?" and then a FileExistsError.
    spec = tmp_path / "vm102.yaml"
    spec.write_text(SPEC.format(linger="null"))
    in_the_way = tmp_path / "state"
    in_the_way.write_text("not a directory\n")
    app = AppContext(state_dir=lambda: in_the_way / "reconciler")
    args = [str(spec) if a == "SPEC" else a for a in command]
    result = CliRunner().invoke(cli, args, obj=app)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"error: {in_the_way} is a regular file, but the reconciler")
    assert f"move it away (for example `mv {in_the_way} {in_the_way}.bak`)" in result.stderr
    assert "?" not in result.output and "Error" not in result.output
    assert in_the_way.read_text() == "not a directory\n"


def test_status_with_an_invalid_spec_still_shows_the_records(tmp_path: Path, state: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("apiVersion: reconciler/v1\n")
    result = CliRunner().invoke(cli, ["status", str(spec)])
    assert result.exit_code == 0
    assert "Last run:" in result.output and "never" in result.output
    assert "timer not probed" in result.output


def test_suspend_spec_as_a_third_account_refuses_instead_of_pausing_its_own_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An admin account over SSH without its sudo rule is neither root nor the spec's user:
    `suspend SPEC` would pause the admin's own (nonexistent) runs, and the timer would go on."""
    spec = tmp_path / "host.yaml"
    spec.write_text(SPEC.format(linger="true"))
    state = tmp_path / "state"
    monkeypatch.setattr(os, "geteuid", lambda: 4242)  # no such account: named by its uid
    app = AppContext(state_dir=lambda: state)
    for command in (["suspend", str(spec), "--reason", "x"], ["resume", str(spec)]):
        result = CliRunner().invoke(cli, command, obj=app)
        assert result.exit_code == 1, result.output
        assert "names user's timer: run this as user or as root (we are 4242)" in result.output
    assert not state.exists()


def test_status_json_and_a_different_format_disagree(tmp_path: Path) -> None:
    spec = tmp_path / "host.yaml"
    spec.write_text(SPEC.format(linger="true"))
    for specs in ([str(spec)], [str(spec), str(spec)]):
        result = CliRunner().invoke(cli, ["status", *specs, "--json", "--format", "human"])
        assert result.exit_code == 64, result.output
        assert "--json and --format human disagree" in result.output
