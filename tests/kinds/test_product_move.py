"""The product move clawdbot -> openclaw (kinds/_move.py, shell/switch.py) on the fake host.

A profile converged under clawdbot (versioned install, a token, state with sessions, a paired
device and a device identity) is moved by changing `product` (and keeping its `state_dir`):
one gated step per profile; success keeps the state and the token; a gate failure brings
clawdbot back byte-identical; a reconciler killed at each step converges on the next apply.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from file_tree import file_tree

from reconciler.core.action import Action, EnsureSecretEnv, GatedSwitch
from reconciler.core.plan import Plan
from reconciler.facts.switches import BAD_VERSIONS, SwitchMemoryProbe, memory_dir
from reconciler.gateway.addresses import unit_address
from reconciler.render.human import render_plan
from reconciler.shell import switch as switch_module
from reconciler.shell.apply import apply_plan
from reconciler.shell.runner import HostRunner
from reconciler.spec.model import GatewayRuntime, Node, Profile, Runtime, Spec

from .gateway_host import GatewayHost, gateway_spec

OLD, NEW = "2026.1.24-3", "2026.2.1"
OLD_UNIT, NEW_UNIT = "clawdbot-gateway-ops.service", "openclaw-gateway-ops.service"
PORT = 18809


def spec_of(product: str, version: str, state_dir: str | None = None) -> Spec:
    base = gateway_spec(
        Profile("ops", PORT, auth="token", state_dir=state_dir),
        product=product,
    )
    runtime = GatewayRuntime(
        product,  # the package
        version=version,
        install="versioned",
        start_timeout_s=2,
        health_window_s=0,
    )
    return dataclasses.replace(base, runtime=Runtime(node=Node(range=">=22.12"), gateway=runtime))


CLAWDBOT = spec_of("clawdbot", OLD)
OPENCLAW = spec_of("openclaw", NEW, state_dir="~/.clawdbot-ops")


@pytest.fixture
def gw(tmp_path: Path) -> GatewayHost:
    """ops runs clawdbot OLD (versioned, a token) with state worth keeping."""
    gw = GatewayHost(tmp_path)
    gw.fake.set_npm_registry({"clawdbot": {OLD: "ok"}, "openclaw": {NEW: "ok"}})
    gw.converge(CLAWDBOT)
    state = gw.home / ".clawdbot-ops"
    (state / "agents/main/sessions").mkdir(parents=True)
    (state / "agents/main/sessions/s1.jsonl").write_text('{"role": "user"}\n')
    (state / "devices").mkdir()
    (state / "devices/paired.json").write_text('{"phone": {"publicKey": "k"}}\n')
    (state / "identity").mkdir()
    (state / "identity/device-auth.json").write_text('{"token": "device"}')
    gw.fake.clear_calls()
    return gw


def token(gw: GatewayHost, key: str) -> str | None:
    text = (gw.home / ".clawdbot-ops/gateway.env").read_text()
    return next(
        (line.split("=", 1)[1] for line in text.splitlines() if line.startswith(key + "=")), None
    )


def unit_action(plan: Plan) -> Action:
    return next(a for a in plan.actions if a.address == unit_address("ops"))


def move_of(action: Action) -> GatedSwitch:
    return next(op for op in action.operations if isinstance(op, GatedSwitch))


def running_version(gw: GatewayHost, unit: str) -> str:
    main = gw.fake.unit_runtime(unit).get("main_pid")
    cmdline = " ".join(gw.fake.processes()[int(main)]["cmdline"]) if main else ""
    return next((v for v in (OLD, NEW) if f"/{v}/" in cmdline), "none")


def test_a_move_with_warm_ups_off_starts_openclaw_cold_and_says_so(gw: GatewayHost) -> None:
    """`runtime.gateway.warm_up: false`: the move has no warm-up (no transient unit), its
    plan says the first start is cold, and the move still passes its gate."""
    cold = dataclasses.replace(
        OPENCLAW,
        runtime=dataclasses.replace(
            OPENCLAW.runtime,
            gateway=dataclasses.replace(OPENCLAW.runtime.gateway, warm_up=False),
        ),
    )
    assert move_of(unit_action(gw.plan(OPENCLAW))).warm_up is not None  # on by default
    plan = gw.plan(cold)
    action = unit_action(plan)
    assert move_of(action).warm_up is None
    assert f"; {NEW}: cold first start: runtime.gateway.warm_up is false" in action.reason
    result = apply_plan(plan, gw.runner)
    outcome = next(o for o in result.outcomes if o.action.address == unit_address("ops"))
    assert outcome.outcome == "applied", outcome.detail
    assert not [c for c in gw.fake.calls() if c["tool"] == "systemd-run"]
    assert running_version(gw, NEW_UNIT) == NEW


def test_changing_product_alone_stops_the_plan_with_the_line_to_add(gw: GatewayHost) -> None:
    """Without `state_dir` the openclaw unit would use an empty ~/.openclaw-ops: the plan
    refuses (nothing is touched) and names the field to set."""
    plan = gw.plan(spec_of("openclaw", NEW))
    assert any(
        "set `state_dir: ~/.clawdbot-ops` on profile ops" in e and OLD_UNIT in e
        for e in plan.errors
    ), plan.errors


def test_the_move_is_one_reviewed_step(gw: GatewayHost) -> None:
    plan = gw.plan(OPENCLAW)
    assert not plan.errors, plan.errors
    action = unit_action(plan)
    op = move_of(action)
    assert (op.replaces, op.unit) == (OLD_UNIT, NEW_UNIT)
    assert op.env_rename == ("CLAWDBOT_", "OPENCLAW_")
    assert op.env_token == "OPENCLAW_GATEWAY_TOKEN"
    assert op.state == gw.home / ".clawdbot-ops"
    assert op.config == gw.home / ".clawdbot-ops/clawdbot.json"  # kept, not renamed
    assert (op.from_version, op.to_version) == (f"clawdbot {OLD}", NEW)
    # The rollback is checked with clawdbot's own CLI and variable names.
    assert any(w.startswith("CLAWDBOT_STATE_DIR=") for w in op.rollback_check.argv)
    assert any(w.startswith("OPENCLAW_STATE_DIR=") for w in op.check.argv)
    # No new token is generated beside the old one; no second unit, no new state dirs.
    assert not any(isinstance(o, EnsureSecretEnv) for a in plan.actions for o in a.operations)
    assert not any(".openclaw-ops" in a.reason for a in plan.actions)
    assert not any(a.address.startswith("unit[") for a in plan.actions)
    assert not any(f.address.startswith("unit[") for f in plan.findings)
    text = render_plan(plan, lambda c: c.display(), color=False)
    assert f"product move clawdbot {OLD} -> openclaw {NEW}" in text
    assert f"{OLD_UNIT} is replaced by {NEW_UNIT}" in text
    assert "OPENCLAW_STATE_DIR" in (action.diff or "")


def test_a_healthy_move_keeps_state_and_token_and_converges(gw: GatewayHost) -> None:
    state = gw.home / ".clawdbot-ops"
    before = file_tree(state)
    old_token = token(gw, "CLAWDBOT_GATEWAY_TOKEN")
    assert old_token
    result = gw.apply(OPENCLAW)
    outcome = next(o for o in result.outcomes if o.action.address == unit_address("ops"))
    assert outcome.outcome == "applied", outcome.detail
    assert outcome.detail.startswith(f"ops: clawdbot {OLD} -> {NEW}, healthy"), outcome.detail
    assert result.ok, [(o.action.address, o.outcome, o.detail) for o in result.outcomes]
    assert not gw.fake.unit_path(OLD_UNIT).exists()
    assert running_version(gw, NEW_UNIT) == NEW
    assert gw.fake.unit_runtime(OLD_UNIT).get("main_pid") in (None, 0, "")
    assert token(gw, "OPENCLAW_GATEWAY_TOKEN") == old_token
    assert token(gw, "CLAWDBOT_GATEWAY_TOKEN") is None
    after = file_tree(state)
    assert {k: v for k, v in after.items() if k != "gateway.env"} == {
        k: v for k, v in before.items() if k != "gateway.env"
    }
    assert file_tree(memory_dir(gw.home) / "kept-state/ops") == before
    assert not (gw.home / ".openclaw-ops").exists()
    # Idempotence: the next plan is empty, a second apply runs nothing mutating.
    nothing = gw.plan(OPENCLAW)
    assert not nothing.runnable and not nothing.errors, [a.address for a in nothing.runnable]
    gw.fake.clear_calls()
    again = gw.apply(OPENCLAW)
    assert again.ok and not gw.fake.mutating_calls()


def test_a_profile_without_a_token_gets_one_stable_token(tmp_path: Path) -> None:
    """clawdbot `auth: none` has no gateway.env; openclaw makes up a new token at every start
    without one (host-facts §8), so the move generates one, once."""
    gw = GatewayHost(tmp_path)
    gw.fake.set_npm_registry({"clawdbot": {OLD: "ok"}, "openclaw": {NEW: "ok"}})

    def spec(product: str, version: str, state_dir: str | None = None) -> Spec:
        return dataclasses.replace(
            spec_of(product, version, state_dir),
            profiles=(Profile("ops", PORT, state_dir=state_dir),),
        )

    gw.converge(spec("clawdbot", OLD))
    env = gw.home / ".clawdbot-ops/gateway.env"
    assert not env.exists()
    gw.converge(spec("openclaw", NEW, "~/.clawdbot-ops"))
    assert not gw.fake.unit_path(OLD_UNIT).exists()
    first = token(gw, "OPENCLAW_GATEWAY_TOKEN")
    assert first and oct(env.stat().st_mode & 0o777) == "0o600"
    gw.converge(spec("openclaw", NEW, "~/.clawdbot-ops"))
    assert token(gw, "OPENCLAW_GATEWAY_TOKEN") == first


def test_a_token_in_the_replaced_unit_is_carried_not_made_up(tmp_path: Path) -> None:
    """`clawdbot gateway install` writes the token into the unit (`Environment=`, host-facts
    §1), not into gateway.env: the move carries that value into gateway.env under openclaw's
    name (every paired client presents it), never shown; without it a new one was made up."""
    gw = GatewayHost(tmp_path)
    gw.fake.set_npm_registry({"clawdbot": {OLD: "ok"}, "openclaw": {NEW: "ok"}})
    gw.converge(
        dataclasses.replace(CLAWDBOT, profiles=(Profile("ops", PORT),))  # no gateway.env
    )
    env = gw.home / ".clawdbot-ops/gateway.env"
    assert not env.exists()
    secret = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    unit = gw.fake.unit_path(OLD_UNIT)
    unit.write_text(
        unit.read_text().replace(
            "[Service]\n", f'[Service]\nEnvironment="CLAWDBOT_GATEWAY_TOKEN={secret}"\n', 1
        )
    )
    plan = gw.plan(OPENCLAW)
    assert not plan.errors, plan.errors
    assert secret not in render_plan(plan, lambda c: c.display(), color=False)
    result = gw.apply(OPENCLAW)
    assert result.ok, [(o.action.address, o.outcome, o.detail) for o in result.outcomes]
    assert token(gw, "OPENCLAW_GATEWAY_TOKEN") == secret
    assert oct(env.stat().st_mode & 0o777) == "0o600"
    assert not any(secret in o.detail for o in result.outcomes)


@pytest.mark.parametrize(
    ("line", "carried"),
    [
        ("Environment=CLAWDBOT_GATEWAY_TOKEN=abc123def456", "abc123def456"),
        ('Environment="CLAWDBOT_GATEWAY_TOKEN=abc 123"', None),  # would read back otherwise
        ("Environment=CLAWDBOT_GATEWAY_TOKEN=", None),
        ("Environment=OTHER=abc123def456", None),
    ],
)
def test_only_a_plain_token_of_the_replaced_unit_is_carried(
    tmp_path: Path, line: str, carried: str | None
) -> None:
    unit = tmp_path / "clawdbot-gateway-ops.service"
    unit.write_text(f"[Service]\n{line}\n")
    env = tmp_path / "gateway.env"
    switch_module.rename_env(env, "CLAWDBOT_", "OPENCLAW_", "OPENCLAW_GATEWAY_TOKEN", unit)
    value = env.read_text().split("OPENCLAW_GATEWAY_TOKEN=", 1)[1].strip()
    assert value == carried if carried else len(value) >= 32, value


def test_an_unhealthy_openclaw_brings_clawdbot_back_byte_identical(gw: GatewayHost) -> None:
    state = gw.home / ".clawdbot-ops"
    old_unit = gw.fake.unit_path(OLD_UNIT).read_text()
    before = file_tree(state)
    gw.fake.set_start_behaviour(f"/{NEW}/", "fail")
    result = gw.apply(OPENCLAW)
    outcome = next(o for o in result.outcomes if o.action.address == unit_address("ops"))
    assert outcome.outcome == "failed"
    assert outcome.detail.startswith(f"rolled back to clawdbot {OLD}"), outcome.detail
    assert gw.fake.unit_path(OLD_UNIT).read_text() == old_unit
    assert not gw.fake.unit_path(NEW_UNIT).exists()
    assert file_tree(state) == before
    assert running_version(gw, OLD_UNIT) == OLD
    assert (memory_dir(gw.home) / BAD_VERSIONS).exists()
    # Not tried again by the timer: blocked with the mark, until `update --retry`.
    again = unit_action(gw.plan(OPENCLAW))
    assert again.blocked and "failed its health check" in again.blocked


class Killed(BaseException):
    """The reconciler dies here (kill -9): nothing after this point runs."""


STEPS = ["stop", "copy", "rename", "write", "daemon-reload", "start", "health"]
# Only a healthy openclaw gets this far: the clawdbot unit disabled, then its file removed.
AFTER_THE_GATE = ["disable", "remove"]
CASES = [(s, h) for s in STEPS for h in (True, False)] + [(s, True) for s in AFTER_THE_GATE]


@pytest.mark.parametrize(
    ("step", "healthy"),
    CASES,
    ids=[f"{s}-{'openclaw-healthy' if h else 'openclaw-fails'}" for s, h in CASES],
)
def test_a_move_killed_at_each_step_converges_on_the_next_apply(
    gw: GatewayHost, monkeypatch: pytest.MonkeyPatch, step: str, healthy: bool
) -> None:
    state = gw.home / ".clawdbot-ops"
    old_unit = gw.fake.unit_path(OLD_UNIT).read_text()
    before = file_tree(state)
    old_token = token(gw, "CLAWDBOT_GATEWAY_TOKEN")
    if not healthy:
        gw.fake.set_start_behaviour(f"/{NEW}/", "fail")
    real = {name: getattr(switch_module, name) for name in ("_copy_tree", "rename_env")}

    def half_a_copy(source: Path, target: Path) -> None:
        target.mkdir(parents=True)
        (target / "agents").mkdir()  # killed half way: no state.complete
        raise Killed

    def renamed_then_killed(*args: object) -> str:
        real["rename_env"](*args)
        raise Killed

    def written_then_killed(path: Path, content: str) -> str:
        path.write_text(content)
        raise Killed

    def removed_then_killed(path: Path) -> str:
        path.unlink()
        raise Killed

    class DiesAtTheStep(HostRunner):
        def run(self, command):  # type: ignore[no-untyped-def]
            argv = command.argv
            if any("warm-up" in word for word in argv):
                # The warm-up before the move (its own kill test: tests/shell/test_warm_up.py).
                return super().run(command)
            verb = argv[2:3]
            if (
                (step == "stop" and verb == ("stop",))
                or (step == "daemon-reload" and verb == ("daemon-reload",))
                or (step == "start" and argv[-2:] == ("restart", NEW_UNIT))
                or (step == "disable" and verb == ("disable",))
            ):
                raise Killed
            if step == "health" and argv[-3:-1] == ("gateway", "health"):
                # openclaw started and migrated the state (2026.9 does on its first start).
                (state / "identity/device-auth.json").unlink(missing_ok=True)
                (state / "state.sqlite").write_bytes(b"SQLite format 3\x00")
                raise Killed
            return super().run(command)

    if step == "copy":
        monkeypatch.setattr(switch_module, "_copy_tree", half_a_copy)
    if step == "rename":
        monkeypatch.setattr(switch_module, "rename_env", renamed_then_killed)
    if step == "write":
        monkeypatch.setattr(switch_module, "write_unit", written_then_killed)
    if step == "remove":
        monkeypatch.setattr(switch_module, "retire_unit", removed_then_killed)
    plan = gw.plan(OPENCLAW)
    killer = DiesAtTheStep(gw.host, env=gw.fake.env, sleep=lambda s: None)
    with pytest.raises(Killed):
        apply_plan(plan, killer)
    monkeypatch.undo()
    assert SwitchMemoryProbe(memory_dir(gw.home)).read(gw.host).interrupted_switch("ops")
    # The next apply plans the move again from its intent and finishes it.
    resumed = gw.plan(OPENCLAW)
    assert not resumed.errors, resumed.errors
    op = move_of(unit_action(resumed))
    assert op.replaces == OLD_UNIT
    result = apply_plan(resumed, gw.runner)
    outcome = next(o for o in result.outcomes if o.action.address == unit_address("ops"))
    assert outcome.detail.split(":")[0] != "nothing switched", outcome.detail
    if healthy:
        assert outcome.outcome == "applied", outcome.detail
        assert running_version(gw, NEW_UNIT) == NEW
        assert not gw.fake.unit_path(OLD_UNIT).exists()
        assert token(gw, "OPENCLAW_GATEWAY_TOKEN") == old_token
        assert file_tree(memory_dir(gw.home) / "kept-state/ops") == before
        follow = gw.plan(OPENCLAW)
        assert not follow.runnable, [a.address for a in follow.runnable]
    else:
        assert outcome.outcome == "failed", outcome.detail
        assert outcome.detail.startswith(f"rolled back to clawdbot {OLD}"), outcome.detail
        assert running_version(gw, OLD_UNIT) == OLD
        assert gw.fake.unit_path(OLD_UNIT).read_text() == old_unit
        assert not gw.fake.unit_path(NEW_UNIT).exists()
        assert file_tree(state) == before
    assert not (memory_dir(gw.home) / "switch/ops").exists()


@pytest.mark.parametrize(
    ("product", "state_dir", "config"),
    [
        ("openclaw", ".clawdbot-ops", "clawdbot.json"),
        ("openclaw", ".clawdbot", "clawdbot.json"),  # profile default
        ("openclaw", ".openclaw-ops", "openclaw.json"),
        ("openclaw", ".clawdbotx", "openclaw.json"),  # not clawdbot's name for a state dir
        ("openclaw", "state", "openclaw.json"),
        ("clawdbot", ".clawdbot-ops", "clawdbot.json"),
        ("clawdbot", ".openclaw-ops", "clawdbot.json"),  # clawdbot succeeds nothing
    ],
)
def test_a_clawdbot_state_dir_keeps_its_config_name_under_openclaw(
    product: str, state_dir: str, config: str
) -> None:
    from reconciler.spec.naming import config_file_in

    assert config_file_in(product, state_dir) == config


def test_the_state_a_clawdbot_unit_uses_comes_from_its_environment() -> None:
    from reconciler.kinds._move import installed_version, kept_state
    from reconciler.spec.naming import product_names

    old = product_names("clawdbot")
    home = Path("/home/u")
    unit = (
        "[Service]\n"
        'ExecStart="/usr/bin/node" "/home/u/.local/lib/clawdbot/2026.1.24-3/node_modules/'
        'clawdbot/dist/entry.js" gateway --port 18809\n'
        "Environment=CLAWDBOT_STATE_DIR=/srv/clawd/ops\n"
        'Environment="CLAWDBOT_STATE_DIR=/srv/clawd/ops2" HOME=/home/u\n'
    )
    assert kept_state(unit, old, "ops", home) == Path("/srv/clawd/ops2")  # the last one wins
    assert kept_state("[Service]\nExecStart=clawdbot gateway\n", old, "ops", home) == Path(
        "/home/u/.clawdbot-ops"
    )
    assert kept_state("", old, "default", home) == Path("/home/u/.clawdbot")
    assert installed_version(unit, old) == "2026.1.24-3"
    assert installed_version("ExecStart=/usr/local/bin/clawdbot gateway\n", old) is None
