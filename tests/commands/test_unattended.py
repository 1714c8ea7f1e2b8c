"""The unattended commands end to end on the fake host: the apply wrapper wired as cli.py will
wire it, `status`, `suspend` and `resume`."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakehost import FakeHost

from reconciler import cli
from reconciler.app.plan_pass import probe_and_plan
from reconciler.commands.unattended import resume, status, suspend, unattended_apply
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
"""


def wired_do_apply(
    host: HostContext, runner: HostRunner, kinds: Sequence[ResourceKind], non_interactive: bool
) -> object:
    """What cli.apply's body becomes (minus the human rendering and the confirmation prompt)."""

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

    # status, with the CLI's host discovery pointed at the fake host
    monkeypatch.setattr(cli, "discover_host", lambda spec: host)
    monkeypatch.setattr(cli, "make_runner", lambda host, mutating: HostRunner(host, env=fake.env))
    text = CliRunner().invoke(status, [str(spec)])
    assert text.exit_code == 0, text.output
    assert "Last run:" in text.output and "converged (0 applied" in text.output
    assert re.search(r"^Drift found: +none$", text.output, re.M)
    assert re.search(r"^Timer: +installed, enabled, active$", text.output, re.M)
    doc = json.loads(CliRunner().invoke(status, ["--json", str(spec)]).output)
    assert doc["timer"]["installed"] and doc["last_success"]["result"] == "converged"
    assert doc["suspended"] is None and doc["runs"] == 2


def test_unprivileged_run_blocks_root_steps_and_still_succeeds(
    tmp_path: Path, state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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
        == 0
    )  # type: ignore[arg-type]
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("blocked create linger: ")
    assert out[0].endswith("run once as root: sudo loginctl enable-linger user")
    (record,) = read_records(state)
    assert (record.result, record.blocked, record.applied) == ("converged", 1, 0)
    assert fake.mutating_calls() == []


def test_suspend_and_resume_commands(state: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(suspend, ["--reason", "upgrading node"])
    assert result.exit_code == 0 and "suspended since" in result.output
    assert json.loads((state / "suspended.json").read_text())["reason"] == "upgrading node"
    result = runner.invoke(resume, [])
    assert (
        result.exit_code == 0 and "Resumed" in result.output and "upgrading node" in result.output
    )
    assert "were not suspended" in runner.invoke(resume, []).output


def test_status_with_an_invalid_spec_still_shows_the_records(tmp_path: Path, state: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("apiVersion: reconciler/v1\n")
    result = CliRunner().invoke(status, [str(spec)])
    assert result.exit_code == 0
    assert "Last run:" in result.output and "never" in result.output
    assert "timer not probed" in result.output
