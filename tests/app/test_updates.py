"""`update --retry` and `rollback` through the CLI on a fake host, and the timer's apply
honouring a version marked bad."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fakehost import FakeHost
from review_cli import FakeHostCli

from reconciler import cli as cli_module
from reconciler.facts.switches import BAD_VERSIONS, SWITCHED, memory_dir

OLD, NEW = "2026.1.24-3", "2026.2.1"
UNIT = "clawdbot-gateway-ops.service"
SPEC = f"""\
apiVersion: reconciler/v1
host:
  name: vm102
  user: user
runtime:
  node: ">=22.12"
  gateway:
    install: versioned
    version: "{NEW}"
    start_timeout: 5s
    health_window: 0s
linger: true
profiles:
  ops:
    port: 18809
"""
MARK = {"version": NEW, "failed_at": "2026-11-29T11:02:03+00:00", "reason": "exit status 1"}


class Cli(FakeHostCli):
    def __init__(self, fake: FakeHost, state: Path) -> None:
        super().__init__(fake)
        self.state = state

    def __call__(self, *args: str | Path) -> Result:
        context = dataclasses.replace(self.context(), state_dir=lambda: self.state)
        return CliRunner().invoke(cli_module.cli, [str(a) for a in args], obj=context)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    """ops runs OLD from its versioned install (applied by the reconciler itself)."""
    fake = FakeHost(tmp_path / "host")
    fake.set_linger("user", True)
    fake.set_npm_registry({"clawdbot": {OLD: "ok", NEW: "ok"}})
    cli = Cli(fake, tmp_path / "state")
    first = tmp_path / "old.yaml"
    first.write_text(SPEC.replace(NEW, OLD))
    applied = cli("apply", first, "--yes", "--host-check=off")
    assert applied.exit_code == 0, applied.output
    assert f"/{OLD}/" in fake.unit_path(UNIT).read_text()
    fake.clear_calls()
    yield cli
    fake.close()


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "vm102.yaml"
    path.write_text(SPEC)
    return path


def mark(cli: Cli) -> Path:
    memory = memory_dir(cli.fake.home)
    memory.mkdir(parents=True, mode=0o700, exist_ok=True)
    (memory / BAD_VERSIONS).write_text(json.dumps({"profiles": {"ops": MARK}}))
    return memory / BAD_VERSIONS


def restarts_of_ops(fake: FakeHost) -> list[list[str]]:
    return [c["argv"] for c in fake.mutating_calls() if c["argv"][-2:] == ["restart", UNIT]]


def test_the_timer_never_retries_a_version_marked_bad(cli: Cli, spec: Path) -> None:
    mark(cli)
    result = cli("apply", spec, "--non-interactive", "--host-check=off")
    assert f"{NEW} failed its health check at 2026-11-29T11:02:03+00:00" in result.output
    assert "reconciler update SPEC --retry ops" in result.output
    assert restarts_of_ops(cli.fake) == []
    assert UNIT in cli.fake.loaded_units()
    assert f"/{OLD}/" in cli.fake.unit_path(UNIT).read_text()
    record = json.loads((cli.state / "runs.jsonl").read_text().splitlines()[-1])
    assert record["result"] != "converged" and "profile[ops].unit" in record["drift"]


def test_update_retry_forgets_the_mark_and_applies(cli: Cli, spec: Path) -> None:
    path = mark(cli)
    result = cli("update", spec, "--retry", "ops", "--yes", "--host-check=off")
    assert (
        f"profile ops: forgot that {NEW} failed its health check at 2026-11-29T11:02:03+00:00; "
        "this apply tries it again"
    ) in result.output, result.output
    assert json.loads(path.read_text()) == {"profiles": {}}
    assert restarts_of_ops(cli.fake) != []  # the switch ran
    assert f"ops: {OLD} -> {NEW}, healthy (downtime " in result.output
    record = json.loads((cli.state / "runs.jsonl").read_text().splitlines()[-1])
    (switch,) = record["switches"]
    assert (switch["profile"], switch["from"], switch["to"], switch["outcome"]) == (
        "ops",
        OLD,
        NEW,
        "switched",
    )
    assert switch["downtime_s"] >= 0
    kept = json.loads((memory_dir(cli.fake.home) / SWITCHED).read_text())
    assert kept["profiles"]["ops"]["from"] == OLD and kept["profiles"]["ops"]["to"] == NEW


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--retry", "ops", "--dry-run"], "--retry forgets a mark, and --dry-run changes nothing"),
        (["--retry", "nosuch"], "has no profile 'nosuch' (profiles: ops)"),
    ],
)
def test_update_usage_errors_change_nothing(
    cli: Cli, spec: Path, args: list[str], message: str
) -> None:
    path = mark(cli)
    result = cli("update", spec, *args, "--host-check=off")
    assert result.exit_code == 64 and message in result.output
    assert json.loads(path.read_text())["profiles"]["ops"] == MARK
    assert cli.fake.mutating_calls() == []


def test_a_failing_update_exits_1_and_the_next_plan_blocks_it(cli: Cli, spec: Path) -> None:
    cli.fake.set_start_behaviour(f"/{NEW}/", "fail", journal=["ERR_MODULE_NOT_FOUND"])
    result = cli("update", spec, "--yes", "--host-check=off")
    assert result.exit_code == 1
    assert f"FAILED (rolled back to {OLD}: its process ended" in result.output
    assert "FAILED (FAILED" not in result.output
    assert "ERR_MODULE_NOT_FOUND" in result.output
    assert f"/{OLD}/" in cli.fake.unit_path(UNIT).read_text()
    record = json.loads((cli.state / "runs.jsonl").read_text().splitlines()[-1])
    assert record["result"] == "failed" and record["switches"][0]["outcome"] == "rolled-back"
    plan = cli("plan", spec, "--host-check=off", "--no-color")
    assert f"{NEW} failed its health check at " in plan.output


def test_rollback_needs_a_versioned_install(cli: Cli, tmp_path: Path) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text(SPEC.replace("    install: versioned\n", ""))
    result = cli("rollback", plain, "ops", "--host-check=off")
    assert result.exit_code == 1 and "runtime.gateway.install: versioned" in result.output


def test_rollback_without_a_known_earlier_version_asks_for_one(cli: Cli, spec: Path) -> None:
    result = cli("rollback", spec, "ops", "--host-check=off")
    assert result.exit_code == 64
    assert "no earlier version of profile ops is known: name one with --to VERSION" in (
        result.output
    )
    missing = cli("rollback", spec, "ops", "--to", "2026.1.20", "--host-check=off")
    assert missing.exit_code == 1 and "2026.1.20 is not installed" in missing.output
    assert cli.fake.mutating_calls() == []


@pytest.mark.parametrize("to", ["", " ", "latest", "--help"])
def test_rollback_to_an_empty_or_non_version_is_a_usage_error_before_anything(
    cli: Cli, spec: Path, to: str
) -> None:
    # issue 22: `--to ''` fell back to the default target and rolled back.
    assert cli("update", spec, "--yes", "--host-check=off").exit_code == 0
    cli.fake.clear_calls()
    result = cli("rollback", spec, "ops", f"--to={to}", "--yes", "--host-check=off")
    assert result.exit_code == 64
    assert f"error: --to {to!r}: not an exact version" in result.output
    assert cli.fake.calls() == [] and f"/{NEW}/" in cli.fake.unit_path(UNIT).read_text()


def test_rollback_goes_back_through_the_gate_and_marks_the_version_it_left(
    cli: Cli, spec: Path
) -> None:
    assert cli("update", spec, "--yes", "--host-check=off").exit_code == 0
    assert f"/{NEW}/" in cli.fake.unit_path(UNIT).read_text()
    result = cli("rollback", spec, "ops", "--yes", "--host-check=off")
    assert result.exit_code == 0, result.output
    assert f"ops: {NEW} -> {OLD}, healthy (downtime " in result.output
    assert f"The spec still pins {NEW} for profile ops: it is now marked bad there" in (
        result.output
    )
    assert f"reconciler update {spec} --retry ops" in result.output
    assert f"/{OLD}/" in cli.fake.unit_path(UNIT).read_text()
    marks = json.loads((memory_dir(cli.fake.home) / BAD_VERSIONS).read_text())["profiles"]
    assert marks["ops"]["version"] == NEW and "rolled back by hand" in marks["ops"]["reason"]
    # The timer does not switch back.
    cli.fake.clear_calls()
    timer = cli("apply", spec, "--non-interactive", "--host-check=off")
    assert f"{NEW} failed its health check" in timer.output
    assert restarts_of_ops(cli.fake) == []
    again = cli("rollback", spec, "ops", "--to", OLD, "--yes", "--host-check=off")
    assert again.exit_code == 0 and f"profile ops runs {OLD} already" in again.output


def test_a_rollback_to_a_version_that_does_not_start_restores_the_newer(
    cli: Cli, spec: Path
) -> None:
    assert cli("update", spec, "--yes", "--host-check=off").exit_code == 0
    cli.fake.set_start_behaviour(f"/{OLD}/", "fail", journal=["boom"])
    result = cli("rollback", spec, "ops", "--yes", "--host-check=off")
    assert result.exit_code == 1
    assert f"FAILED (rolled back to {NEW}: its process ended" in result.output
    assert f"/{NEW}/" in cli.fake.unit_path(UNIT).read_text()


def npm_installs(fake: FakeHost) -> list[list[str]]:
    return [c["argv"] for c in fake.mutating_calls() if c["tool"] == "npm"]


def test_a_failed_install_is_not_retried_by_the_timer_until_the_spec_or_retry_asks(
    cli: Cli, spec: Path, tmp_path: Path
) -> None:
    """An install that failed (npm ETARGET here) is remembered with the package.json it was
    tried with: the timer's next apply blocks it without running npm; plan, status and
    versions show it; a spec that changes the package.json, or `update --retry`, tries again."""
    cli.fake.set_npm_registry({"clawdbot": {OLD: "ok"}})  # NEW is not published (yet)
    first = cli("apply", spec, "--non-interactive", "--host-check=off")
    assert first.exit_code == 1, first.output
    assert len(npm_installs(cli.fake)) == 1
    cli.fake.clear_calls()
    again = cli("apply", spec, "--non-interactive", "--host-check=off")
    assert npm_installs(cli.fake) == []
    assert f"clawdbot@{NEW} failed to install at " in again.output, again.output
    assert "`reconciler update SPEC --retry ops`" in again.output
    assert f"/{OLD}/" in cli.fake.unit_path(UNIT).read_text()
    plan = cli("plan", spec, "--host-check=off")
    assert f"clawdbot@{NEW} failed to install at " in plan.output
    versions = cli("versions", spec, "--host-check=off")
    assert re.search(rf"{NEW} +install failed \(", versions.output), versions.output
    status = cli("status", spec)
    assert f"install failed: {NEW} at " in status.output, status.output
    # another package.json (an extra dependency) is another install: planned again
    changed = tmp_path / "extra.yaml"
    changed.write_text(
        SPEC.replace("    start_timeout", '    extra: {left-pad: "1.3.0"}\n    start_timeout')
    )
    assert "failed to install" not in cli("plan", changed, "--host-check=off").output
    # published now; --retry forgets the failure and installs it
    cli.fake.set_npm_registry({"clawdbot": {OLD: "ok", NEW: "ok"}})
    retried = cli("update", spec, "--retry", "ops", "--yes", "--host-check=off")
    assert f"forgot that {NEW} failed to install" in retried.output, retried.output
    assert retried.exit_code == 0, retried.output
    assert f"/{NEW}/" in cli.fake.unit_path(UNIT).read_text()
    memory = json.loads((memory_dir(cli.fake.home) / "gateway-failed-installs.json").read_text())
    assert memory == {"versions": {}}


def test_rollback_and_retry_are_operations_the_contexts_runner_carries_out(
    cli: Cli, spec: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rollback is one planned action (the switch, then the mark on the version it left), and
    update --retry forgets through typed operations: the AppContext's runner carries out every
    effect in the user's memory (as the user when root), the use cases none themselves."""
    from reconciler.core.action import (
        ForgetBadVersion,
        ForgetFailedInstall,
        GatedSwitch,
        MarkBadVersion,
    )

    executed: list[object] = []
    context = cli.context

    def recording() -> object:
        real = context()

        def make_runner(host, mutating):  # type: ignore[no-untyped-def]
            runner = real.make_runner(host, mutating)
            inner = runner.execute if mutating else None

            def execute(operation):  # type: ignore[no-untyped-def]
                executed.append(operation)
                return inner(operation)

            if inner is not None:
                runner.execute = execute  # type: ignore[method-assign]
            return runner

        return dataclasses.replace(real, make_runner=make_runner)

    monkeypatch.setattr(cli, "context", recording)
    assert cli("update", spec, "--yes", "--host-check=off").exit_code == 0
    executed.clear()
    result = cli("rollback", spec, "ops", "--yes", "--host-check=off")
    assert result.exit_code == 0, result.output
    assert [type(op) for op in executed] == [GatedSwitch, MarkBadVersion]
    switch, marked = executed
    assert isinstance(switch, GatedSwitch) and (switch.from_version, switch.to_version) == (
        NEW,
        OLD,
    )
    memory = memory_dir(cli.fake.home)
    assert isinstance(marked, MarkBadVersion)
    assert (marked.memory, marked.profile, marked.version) == (memory, "ops", NEW)
    executed.clear()
    retried = cli("update", spec, "--retry", "ops", "--yes", "--host-check=off")
    assert retried.exit_code == 0, retried.output
    assert executed[:2] == [ForgetBadVersion(memory, "ops"), ForgetFailedInstall(memory, NEW)]
    assert GatedSwitch in [type(op) for op in executed[2:]]
    assert f"/{NEW}/" in cli.fake.unit_path(UNIT).read_text()


def test_a_rollback_whose_switch_fails_marks_nothing(cli: Cli, spec: Path) -> None:
    assert cli("update", spec, "--yes", "--host-check=off").exit_code == 0
    cli.fake.set_start_behaviour(f"/{OLD}/", "fail", journal=["boom"])
    assert cli("rollback", spec, "ops", "--yes", "--host-check=off").exit_code == 1
    # The gate marks the version it refused; the one the rollback would have left stays good.
    marks = json.loads((memory_dir(cli.fake.home) / BAD_VERSIONS).read_text())["profiles"]
    assert marks["ops"]["version"] == OLD


def test_a_rollback_with_the_users_manager_down_is_blocked_as_a_plan_is_and_runs_nothing(
    cli: Cli, spec: Path, tmp_path: Path
) -> None:
    # The rollback's one action goes through the planner's gates (core/plan.gated_plan): with
    # the user's manager down and no linger step to start it, it is blocked with the reason a
    # plan gives every step that talks to the manager, and nothing runs.
    assert cli("update", spec, "--yes", "--host-check=off").exit_code == 0
    left = tmp_path / "left.yaml"
    left.write_text(SPEC.replace("linger: true", "linger: null"))
    cli.fake.set_linger("user", False)
    cli.fake.set_session(False)
    cli.fake.clear_calls()
    planned = cli("plan", left, "--host-check=off")
    reason = "for user: set linger: true in the spec, or log in as user"
    lines = planned.output.splitlines()
    (why,) = {ln.split("blocked: ", 1)[1] for ln in lines if "blocked: " in ln and reason in ln}
    result = cli("rollback", left, "ops", "--to", OLD, "--yes", "--host-check=off")
    assert result.exit_code == 1, result.output
    assert f"profile[ops].unit: {why}" in result.output
    assert cli.fake.mutating_calls() == []
    assert f"/{NEW}/" in cli.fake.unit_path(UNIT).read_text()
    assert not (memory_dir(cli.fake.home) / BAD_VERSIONS).exists()


def test_update_retry_as_an_account_that_cannot_act_as_the_user_forgets_nothing(
    cli: Cli, spec: Path
) -> None:
    # The marks are the user's files: `--retry` forgets them through the planner's gates
    # (core/plan.gated_plan), so an account that may not act as the user is refused with the
    # reason a plan gives, before anything runs, and the mark stays.
    bad = mark(cli)
    before = bad.read_bytes()
    admin = dataclasses.replace(cli.host.invoker, name="admin", uid=1001)
    cli.host = dataclasses.replace(cli.host, invoker=admin, sudo_to_user=False)
    assert not cli.host.can_act_for_user
    cli.fake.clear_calls()
    result = cli("update", spec, "--retry", "ops", "--yes", "--host-check=off")
    assert result.exit_code == 1, result.output
    assert "cannot forget the mark: changes user's files and services; we are admin" in (
        result.output
    )
    assert bad.read_bytes() == before
    assert cli.fake.mutating_calls() == []
