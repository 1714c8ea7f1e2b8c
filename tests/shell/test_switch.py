"""The health-gated switch (reconciler/shell/switch.py) on the fake host, at every failure point.

The fake systemd starts a gateway per its unit's ExecStart line; `set_start_behaviour` makes a
version's start fail, crash after a while, or answer HTTP with a broken RPC.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
from engine_on_fakehost import host_context
from fakehost import FakeHost, gateway_unit_text
from file_tree import file_tree

from reconciler.core.action import GatedSwitch
from reconciler.core.host import HostContext
from reconciler.facts.gateway_rpc import GatewayCall
from reconciler.facts.switches import BAD_VERSIONS, SwitchMemoryProbe, memory_dir
from reconciler.shell.runner import HostRunner
from reconciler.shell.switch import clear_bad

UNIT = "clawdbot-gateway-ops.service"
PORT = 18809
OLD, NEW = "2026.1.24-3", "2026.2.1"
MISSING_MODULE = (
    "Error [ERR_MODULE_NOT_FOUND]: Cannot find module "
    "'/home/user/.local/lib/clawdbot/2026.2.1/node_modules/clawdbot/dist/link-understanding/apply.js'"
)


def unit_text(fake: FakeHost, version: str) -> str:
    prefix = fake.home / ".local/lib/clawdbot" / version / "node_modules"
    return gateway_unit_text(fake.home, profile="ops", port=PORT, prefix=prefix, token=None)


@pytest.fixture
def fake(tmp_path: Path) -> FakeHost:
    fake = FakeHost(tmp_path)
    fake.set_linger("user", True)
    fake.add_unit_file(UNIT, unit_text(fake, OLD))
    fake.install_gateway_unit("ops", port=PORT, name=UNIT, prefix=None)
    # install_gateway_unit rewrote the file with the default prefix: put ours back, restart.
    fake.add_unit_file(UNIT, unit_text(fake, OLD))
    fake.daemon_reload()
    fake.stop_unit(UNIT)
    fake.set_unit_state(UNIT, "active")
    config = fake.home / ".clawdbot-ops" / "clawdbot.json"
    config.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    config.write_text('{ gateway: { mode: "local", port: 18809 } }\n')
    config.chmod(0o600)
    return fake


def switch_op(fake: FakeHost, host: HostContext, **kw: object) -> GatedSwitch:
    program = str(fake.bin_dir / "clawdbot")
    env = (("CLAWDBOT_PROFILE", "ops"), ("CLAWDBOT_GATEWAY_PORT", str(PORT)))
    check = GatewayCall(program, PORT, env).command("gateway", "health", "--json", timeout_s=10)
    fields: dict[str, object] = {
        "profile": "ops",
        "unit": UNIT,
        "unit_file": fake.unit_path(UNIT),
        "content": unit_text(fake, NEW),
        "config": fake.home / ".clawdbot-ops" / "clawdbot.json",
        "check": check,
        "rollback_check": check,
        "from_version": OLD,
        "to_version": NEW,
        "start_timeout_s": 3.0,
        "settle_s": 0.0,
        "memory": memory_dir(fake.home),
        "owner": host.user.name if host.user else None,
    }
    fields.update(kw)
    return GatedSwitch(**fields)  # type: ignore[arg-type]


def runner(fake: FakeHost, host: HostContext) -> HostRunner:
    return HostRunner(host, env=fake.env, sleep=lambda s: time.sleep(min(s, 0.1)))


def running_version(fake: FakeHost) -> str:
    main = fake.unit_runtime(UNIT).get("main_pid")
    cmdline = " ".join(fake.processes()[int(main)]["cmdline"]) if main else ""
    return next((v for v in (OLD, NEW) if f"/{v}/" in cmdline), "none")


def test_a_healthy_version_is_kept_and_the_downtime_measured(fake: FakeHost) -> None:
    host = host_context(fake)
    result = runner(fake, host).execute(switch_op(fake, host))
    assert result.ok, result.detail
    assert result.report is not None and result.report.outcome == "switched"
    assert result.report.downtime_s is not None and 0 <= result.report.downtime_s < 3
    assert running_version(fake) == NEW
    assert fake.unit_path(UNIT).read_text() == unit_text(fake, NEW)
    memory = memory_dir(fake.home)
    assert not (memory / "switch" / "ops").exists()  # the copies are forgotten
    assert not (memory / BAD_VERSIONS).exists()
    verbs = [c["argv"][2:] for c in fake.mutating_calls() if c["tool"] == "systemctl"]
    assert verbs == [["daemon-reload"], ["restart", UNIT]]


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ({"mode": "fail", "exit_status": 1}, "its process ended (exit status 1)"),
        ({"mode": "unhealthy"}, "`gateway health` not ok within 3 s: gateway closed (1011)"),
        (
            {"mode": "crash_after", "after_checks": 1},
            "healthy at first, then",
        ),
    ],
    ids=["start-fails", "health-never-ok", "ok-then-crash"],
)
def test_an_unhealthy_version_is_rolled_back_and_marked_bad(
    fake: FakeHost, behaviour: dict[str, object], reason: str
) -> None:
    fake.set_start_behaviour(f"/{NEW}/", journal=[MISSING_MODULE], **behaviour)  # type: ignore[arg-type]
    host = host_context(fake)
    config = fake.home / ".clawdbot-ops" / "clawdbot.json"
    before = config.read_bytes()
    op = switch_op(fake, host, settle_s=1.5)
    # The new version rewrites its config on its first start (meta.lastTouchedVersion).
    result = runner(fake, host).execute(op)
    assert not result.ok
    report = result.report
    assert report is not None and report.outcome == "rolled-back", result.detail
    assert reason in report.reason
    assert result.detail.startswith(f"rolled back to {OLD}: ")
    if behaviour["mode"] != "unhealthy":
        assert MISSING_MODULE in result.detail  # the journal's last lines
    assert running_version(fake) == OLD
    assert fake.unit_path(UNIT).read_text() == unit_text(fake, OLD)
    assert config.read_bytes() == before
    assert report.downtime_s is not None
    if behaviour["mode"] == "unhealthy":
        # issue 22: from the switch's restart, not the rollback's (3 s unhealthy, not 0.2 s)
        assert report.downtime_s >= 3.0
    memory = SwitchMemoryProbe(memory_dir(fake.home)).read(host)
    mark = memory.bad_version("ops", NEW)
    assert mark is not None and mark.reason == report.reason
    assert "failed its health check at" in mark.blocked_message()
    assert "reconciler update SPEC --retry ops" in mark.blocked_message()
    assert memory.interrupted == ()
    assert stat.S_IMODE(os.stat(memory_dir(fake.home) / BAD_VERSIONS).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(memory_dir(fake.home)).st_mode) == 0o700


def test_the_config_the_new_version_rewrote_is_put_back(fake: FakeHost) -> None:
    """A rolled-back gateway must read the config it wrote itself (newer releases refuse, exit
    78, a config last written by a newer one)."""
    fake.set_start_behaviour(f"/{NEW}/", "fail")
    host = host_context(fake)
    config = fake.home / ".clawdbot-ops" / "clawdbot.json"
    before = config.read_bytes()

    class Rewriting(HostRunner):
        def run(self, command):  # type: ignore[no-untyped-def]
            if (
                command.argv[-2:] == ("restart", UNIT)
                and "2026.2.1" in fake.unit_path(UNIT).read_text()
            ):
                config.write_text('{"meta": {"lastTouchedVersion": "2026.2.1"}}\n')
            return super().run(command)

    result = Rewriting(host, env=fake.env, sleep=lambda s: None).execute(switch_op(fake, host))
    assert result.report is not None and result.report.outcome == "rolled-back"
    assert config.read_bytes() == before
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


def test_a_rollback_waits_for_the_old_version_longer_than_the_new_one_was_given(
    fake: FakeHost,
) -> None:
    """start_timeout is what the spec allows the NEW version; the old one, which served before,
    must not be called a failed rollback because its own start (clawdbot: 60-90 s) is longer
    (the e2e's move whose gate a short start_timeout failed)."""
    fake.set_start_behaviour(f"/{NEW}/", "unhealthy")
    fake.set_start_behaviour(f"/{OLD}/", "slow", after_s=4.5)
    host = host_context(fake)
    result = runner(fake, host).execute(switch_op(fake, host, start_timeout_s=2.0))
    report = result.report
    assert report is not None and report.outcome == "rolled-back", result.detail
    assert "not ok within 2 s" in report.reason
    assert report.downtime_s is not None and report.downtime_s >= 4.5
    assert running_version(fake) == OLD


def test_a_failing_rollback_reports_both_and_keeps_the_copies(fake: FakeHost) -> None:
    fake.set_start_behaviour("/clawdbot/", "fail", journal=["boom"])  # every version fails
    host = host_context(fake)
    result = runner(fake, host).execute(switch_op(fake, host))
    report = result.report
    assert not result.ok and report is not None and report.outcome == "rollback-failed"
    assert result.detail.startswith(f"rollback to {OLD} failed too: ")
    assert f"{NEW} was refused: its process ended" in result.detail
    assert report.downtime_s is None
    memory = SwitchMemoryProbe(memory_dir(fake.home)).read(host)
    assert memory.bad_version("ops", NEW) is not None
    # The copies stay for the next run (and a human): the switch is still open.
    assert memory.interrupted_switch("ops") is not None
    assert fake.unit_path(UNIT).read_text() == unit_text(fake, OLD)


def test_an_interrupted_switch_resumes_with_the_copies_taken_before_it(fake: FakeHost) -> None:
    """kill -9 after the unit was written: the next attempt must not take the half-switched
    host for the state to roll back to."""
    host = host_context(fake)
    config = fake.home / ".clawdbot-ops" / "clawdbot.json"
    before = config.read_bytes()
    fake.set_start_behaviour(f"/{NEW}/", "fail")

    class Killed(Exception):
        pass

    class DiesAtRestart(HostRunner):
        def run(self, command):  # type: ignore[no-untyped-def]
            if command.argv[-2:] == ("restart", UNIT):
                raise Killed
            return super().run(command)

    with pytest.raises(Killed):
        DiesAtRestart(host, env=fake.env).execute(switch_op(fake, host))
    assert fake.unit_path(UNIT).read_text() == unit_text(fake, NEW)  # half way
    config.write_text('{"meta": {"lastTouchedVersion": "2026.2.1"}}\n')  # and rewritten
    memory = SwitchMemoryProbe(memory_dir(fake.home)).read(host)
    interrupted = memory.interrupted_switch("ops")
    assert interrupted is not None and (interrupted.from_version, interrupted.to_version) == (
        OLD,
        NEW,
    )
    # The next run: the op now starts from a unit that already names the new version.
    result = runner(fake, host).execute(switch_op(fake, host, from_version=None))
    assert result.report is not None and result.report.outcome == "rolled-back"
    assert result.report.from_version == OLD  # from the intent, not from the op
    assert fake.unit_path(UNIT).read_text() == unit_text(fake, OLD)
    assert config.read_bytes() == before
    assert running_version(fake) == OLD


def test_health_uses_the_profiles_token_and_never_prints_it(fake: FakeHost) -> None:
    token = "9d2f" * 16
    env_file = fake.home / ".clawdbot-ops" / "gateway.env"
    env_file.write_text(f"CLAWDBOT_GATEWAY_TOKEN={token}\n")
    env_file.chmod(0o600)
    host = host_context(fake)
    text = unit_text(fake, NEW).replace(
        "[Service]\n", f"[Service]\nEnvironmentFile={env_file}\n", 1
    )
    program = str(fake.bin_dir / "clawdbot")
    port = (("CLAWDBOT_GATEWAY_PORT", str(PORT)),)
    with_token = GatewayCall(program, PORT, port, env_file).command("gateway", "health", "--json")
    without = GatewayCall(program, PORT, port).command("gateway", "health", "--json")
    result = runner(fake, host).execute(
        switch_op(fake, host, content=text, check=with_token, rollback_check=without)
    )
    assert result.ok, result.detail
    assert token not in json.dumps([c["argv"] for c in fake.calls()])
    # Without the token the new gateway refuses the check: rolled back.
    fake.set_unit_state(UNIT, "inactive")
    fake.add_unit_file(UNIT, unit_text(fake, OLD))
    fake.daemon_reload()
    fake.set_unit_state(UNIT, "active")
    result = runner(fake, host).execute(
        switch_op(fake, host, content=text, check=without, rollback_check=without)
    )
    assert result.report is not None and result.report.outcome == "rolled-back"
    assert "token missing" in result.report.reason
    assert token not in result.detail


def test_nothing_runs_when_the_copy_cannot_be_kept(fake: FakeHost) -> None:
    host = host_context(fake)
    memory = memory_dir(fake.home)
    memory.parent.mkdir(parents=True, exist_ok=True)
    memory.write_text("a file where the state directory goes")
    result = runner(fake, host).execute(switch_op(fake, host))
    assert not result.ok and result.detail.startswith("nothing switched: cannot keep a copy")
    assert fake.mutating_calls() == []
    assert fake.unit_path(UNIT).read_text() == unit_text(fake, OLD)


def test_retry_clears_only_that_profiles_mark(fake: FakeHost) -> None:
    fake.set_start_behaviour(f"/{NEW}/", "fail")
    host = host_context(fake)
    runner(fake, host).execute(switch_op(fake, host))
    memory = memory_dir(fake.home)
    assert clear_bad(memory, "ops") is True
    assert clear_bad(memory, "ops") is False
    assert SwitchMemoryProbe(memory).read(host).bad == ()


def test_as_root_the_memory_belongs_to_the_user(fake: FakeHost) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to the fake user's uid")
    fake.set_start_behaviour(f"/{NEW}/", "fail")
    host = host_context(fake, "root")
    result = runner(fake, host).execute(switch_op(fake, host))
    assert result.report is not None and result.report.outcome == "rolled-back"
    memory = memory_dir(fake.home)
    for path in (memory, memory / BAD_VERSIONS, fake.unit_path(UNIT)):
        assert path.stat().st_uid == fake.uid


def test_a_systemctl_failure_rolls_back_without_blaming_the_version(fake: FakeHost) -> None:
    """A refused restart says nothing about the version: the next apply tries it again."""
    host = host_context(fake)
    fake.fail_mutating_call(2)  # daemon-reload works, the restart is refused
    result = runner(fake, host).execute(switch_op(fake, host))
    assert result.report is not None and result.report.outcome == "rolled-back"
    assert result.report.reason.startswith(f"systemctl --user restart {UNIT}: exit 1")
    assert SwitchMemoryProbe(memory_dir(fake.home)).read(host).bad == ()
    assert fake.unit_path(UNIT).read_text() == unit_text(fake, OLD)
    assert running_version(fake) == OLD


class Killed(BaseException):
    """The reconciler dies here (kill -9): nothing after this point of the switch runs."""


KILL_STEPS = ["stop", "copy", "daemon-reload", "restart", "health", "forget"]
# Only a healthy version is kept: the kill as it is recorded.
KILL_CASES = [(s, h) for s in KILL_STEPS for h in (True, False)] + [("keep", True)]


@pytest.mark.parametrize(
    ("step", "healthy"),
    KILL_CASES,
    ids=[f"{s}-{'new-healthy' if h else 'new-fails'}" for s, h in KILL_CASES],
)
def test_a_switch_killed_at_any_step_converges_on_the_next_run_with_the_state_intact(
    fake: FakeHost, monkeypatch: pytest.MonkeyPatch, step: str, healthy: bool
) -> None:
    """Issue 21 item 4 on the fake host: a reconciler killed at each step of a switch (the
    stop, the state copy half done, the daemon-reload, the restart, the health check with the
    new release running and migrating its state) leaves a host the next run converges: kept
    when the new version is healthy (with the pre-switch state in kept-state/), else rolled
    back with the state directory byte-identical to before the first attempt. `keep`: killed
    as the switch is kept (the kept switch recorded, the state copy not moved yet); `forget`:
    killed after the keep moved the pre-switch copy to kept-state, before the intent was
    removed (the next run used to lose that copy: it found the copy's marker, not the copy,
    and a rollback then would have moved the live state away with nothing to put back)."""
    from reconciler.shell import switch as switch_module

    host = host_context(fake)
    state = fake.home / ".clawdbot-ops"
    (state / "agents/main/sessions").mkdir(parents=True)
    (state / "agents/main/sessions/s1.jsonl").write_text('{"role": "user"}\n')
    (state / "identity").mkdir()
    (state / "identity/device-auth.json").write_text('{"token": "device"}')
    before = file_tree(state)
    if not healthy:
        fake.set_start_behaviour(f"/{NEW}/", "fail")
    real_copy = switch_module._copy_tree
    real_record, real_forget = switch_module.record_switched, switch_module.forget_copies

    def half_a_copy(source: Path, target: Path) -> None:
        target.mkdir(parents=True)
        (target / "agents").mkdir()  # a copy killed half way: no state.complete
        raise Killed

    def killed_first(*args: object) -> str:
        raise Killed

    class DiesAtTheStep(HostRunner):
        def run(self, command):  # type: ignore[no-untyped-def]
            argv = command.argv
            if (step in ("stop", "daemon-reload") and argv[2:3] == (step,)) or (
                step == "restart" and argv[-2:] == ("restart", UNIT)
            ):
                raise Killed
            if step == "health" and argv[-3:-1] == ("gateway", "health"):
                # The new release started and migrated its state (openclaw 2026.9 does).
                (state / "identity/device-auth.json").unlink(missing_ok=True)
                (state / "state.sqlite").write_bytes(b"SQLite format 3\x00")
                raise Killed
            return super().run(command)

    if step == "copy":
        monkeypatch.setattr(switch_module, "_copy_tree", half_a_copy)
    if step == "keep":
        monkeypatch.setattr(switch_module, "record_switched", killed_first)
    if step == "forget":
        monkeypatch.setattr(switch_module, "forget_copies", killed_first)
    with pytest.raises(Killed):
        DiesAtTheStep(host, env=fake.env).execute(switch_op(fake, host, state=state))
    monkeypatch.setattr(switch_module, "_copy_tree", real_copy)
    monkeypatch.setattr(switch_module, "record_switched", real_record)
    monkeypatch.setattr(switch_module, "forget_copies", real_forget)
    assert SwitchMemoryProbe(memory_dir(fake.home)).read(host).interrupted_switch("ops")
    # The next run (the plan shows the switch again from the intent): the same op.
    result = runner(fake, host).execute(switch_op(fake, host, from_version=None, state=state))
    assert result.report is not None and result.report.from_version == OLD, result.detail
    memory = memory_dir(fake.home)
    if healthy:
        assert result.report.outcome == "switched", result.detail
        assert running_version(fake) == NEW
        assert file_tree(memory / "kept-state/ops") == before  # the state before any new start
    else:
        assert result.report.outcome == "rolled-back", result.detail
        assert running_version(fake) == OLD
        assert fake.unit_path(UNIT).read_text() == unit_text(fake, OLD)
        assert file_tree(state) == before
    assert not (memory / "switch/ops").exists()  # converged: nothing left to resume


def test_the_test_hook_traces_every_step_in_order_and_is_silent_unset(
    fake: FakeHost, capsys: pytest.CaptureFixture[str]
) -> None:
    """`RECONCILER_TEST_SWITCH_PAUSE` (the e2e's way to SIGKILL a real apply at a known step):
    set to a word that is no step, the switch only writes the steps it begins, in the order of
    SWITCH_STEPS; unset (production), it writes nothing at all."""
    from reconciler.shell.switch import PAUSE_ENV, SWITCH_STEPS

    host = host_context(fake)
    state = fake.home / ".clawdbot-ops"
    quiet = runner(fake, host).execute(switch_op(fake, host, state=state))
    assert quiet.report is not None and quiet.report.outcome == "switched", quiet.detail
    assert capsys.readouterr().err == ""
    traced = HostRunner(host, env={**fake.env, PAUSE_ENV: "trace"}, sleep=lambda s: None)
    back = switch_op(fake, host, state=state, content=unit_text(fake, OLD), to_version=OLD)
    result = traced.execute(back)
    assert result.report is not None and result.report.outcome == "switched", result.detail
    lines = capsys.readouterr().err.splitlines()
    steps = [line.removeprefix("reconciler switch step: ops ") for line in lines]
    assert steps == [
        "copies", "stop", "state-copy", "unit", "restart", "gate", "keep", "forget"
    ]  # fmt: skip
    assert steps == sorted(steps, key=SWITCH_STEPS.index)


def test_the_test_hook_stops_at_the_step_it_names(
    fake: FakeHost, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Named a step, the hook stops the switch there (for `_PAUSE_S`, shortened here: the e2e
    kills it long before), after the steps before it and with nothing of that step done."""
    from reconciler.shell import switch as switch_module

    host = host_context(fake)
    seen: list[tuple[str, str]] = []

    def pause() -> None:
        seen.append((running_version(fake), fake.unit_path(UNIT).read_text()))

    monkeypatch.setattr(switch_module, "_pause", pause)
    paused = HostRunner(host, env={**fake.env, switch_module.PAUSE_ENV: "restart"})
    paused.sleep = lambda s: None
    result = paused.execute(switch_op(fake, host, state=fake.home / ".clawdbot-ops"))
    assert result.report is not None and result.report.outcome == "switched", result.detail
    # Stopped once, at the restart: the old gateway stopped, the new unit written.
    assert seen == [("none", unit_text(fake, NEW))]
    assert "reconciler switch paused: ops restart" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not a switch step"):
        switch_module._begin(paused, switch_op(fake, host), "nap")
