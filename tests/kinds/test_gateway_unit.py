"""Gateway units: deterministic rendering, systemd quoting, the token file, unified diffs."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.core.action import EnsureSecretEnv, WriteFile
from reconciler.core.switch import RESTART_DEADLINE_S, UNIT_STOP_TIMEOUT_S
from reconciler.facts.files import PathProbe, PathState
from reconciler.facts.programs import ProgramVersion
from reconciler.gateway.paths import profile_paths
from reconciler.kinds.gateway_unit import (
    GatewayUnitKind,
    SecretEnvProbe,
    SecretEnvState,
    UnitRenderError,
    has_value,
    redact,
    render_unit,
    systemd_word,
    unit_diff,
    unit_path_env,
)
from reconciler.kinds.runtime import gateway_probe, node_probe
from reconciler.render.human import render_plan
from reconciler.render.json_plan import plan_document
from reconciler.shell.files import ensure_secret_env
from reconciler.spec.model import Profile

from .gateway_host import GatewayHost, addresses, gateway_spec
from .helpers import USER, facts, located, make_host

GATEWAY = "/home/user/.npm-global/bin/clawdbot"
NODE = "/opt/node-22/bin/node"


@pytest.mark.parametrize(
    ("word", "exec_line", "expected"),
    [
        ("/usr/bin/clawdbot", True, "/usr/bin/clawdbot"),
        ("/opt/my apps/clawdbot", True, '"/opt/my apps/clawdbot"'),
        ("/opt/100%/gw", True, "/opt/100%%/gw"),
        ("/opt/$HOME/gw", True, "/opt/$$HOME/gw"),
        ("A=$HOME", False, "A=$HOME"),  # no variable expansion in Environment=
        ('A=say "hi"', False, '"A=say \\"hi\\""'),
        ("A=back\\slash", False, '"A=back\\\\slash"'),
        ("", True, '""'),
    ],
)
def test_systemd_quoting(word: str, exec_line: bool, expected: str) -> None:
    assert systemd_word(word, exec_line=exec_line) == expected


def test_newlines_cannot_go_into_a_unit() -> None:
    with pytest.raises(UnitRenderError):
        systemd_word("/opt/a\nb", exec_line=True)


def test_path_puts_node_first_without_duplicates() -> None:
    assert unit_path_env(NODE, GATEWAY) == (
        "/opt/node-22/bin:/home/user/.npm-global/bin:/usr/local/bin:/usr/bin:/bin"
    )
    assert unit_path_env(None, "/usr/bin/clawdbot") == "/usr/bin:/usr/local/bin:/bin"


def test_render_is_deterministic_and_complete() -> None:
    spec = gateway_spec(Profile("ops", 18809, auth="token"))
    paths = profile_paths(spec, spec.profiles[0], make_host())
    text = render_unit(spec, spec.profiles[0], paths, USER.home, GATEWAY, NODE)
    assert text == render_unit(spec, spec.profiles[0], paths, USER.home, GATEWAY, NODE)
    lines = text.splitlines()
    for expected in (
        "[Unit]",
        "After=network-online.target",
        "Wants=network-online.target",
        f"ExecStart={GATEWAY} gateway --port 18809",
        "Environment=HOME=/home/user",
        "Environment=PATH=/opt/node-22/bin:/home/user/.npm-global/bin:/usr/local/bin:/usr/bin:/bin",
        "Environment=CLAWDBOT_PROFILE=ops",
        "Environment=CLAWDBOT_STATE_DIR=/home/user/.clawdbot-ops",
        "Environment=CLAWDBOT_CONFIG_PATH=/home/user/.clawdbot-ops/clawdbot.json",
        "Environment=CLAWDBOT_GATEWAY_PORT=18809",
        "EnvironmentFile=/home/user/.clawdbot-ops/gateway.env",
        "Restart=always",
        "RestartSec=5",
        "KillMode=process",
        "TimeoutStartSec=30",
        "TimeoutStopSec=30",
        "WantedBy=default.target",
    ):
        assert expected in lines
    assert "TOKEN" not in text
    # every restart's deadline outlasts the stop timeout (systemd SIGKILLs at it)
    assert UNIT_STOP_TIMEOUT_S < RESTART_DEADLINE_S


def test_openclaw_names_come_from_the_table() -> None:
    spec = gateway_spec(Profile("ops", 18809), product="openclaw")
    paths = profile_paths(spec, spec.profiles[0], make_host())
    text = render_unit(spec, spec.profiles[0], paths, USER.home, "/usr/bin/openclaw", None)
    assert paths.unit == "openclaw-gateway-ops.service"
    assert "Environment=OPENCLAW_STATE_DIR=/home/user/.openclaw-ops" in text
    assert "CLAWDBOT" not in text


def test_redaction_of_old_units() -> None:
    assert redact("Environment=CLAWDBOT_GATEWAY_TOKEN=abc123") == (
        "Environment=CLAWDBOT_GATEWAY_TOKEN=(sensitive)"
    )
    assert redact('Environment="OPENCLAW_GATEWAY_PASSWORD=a b"') == (
        'Environment="OPENCLAW_GATEWAY_PASSWORD=(sensitive)"'
    )
    assert redact('Environment=A=1 "MY_SECRET=x y" B_KEY="q r"') == (
        'Environment=A=1 "MY_SECRET=(sensitive)" B_KEY=(sensitive)'
    )
    assert redact("Environment=CLAWDBOT_GATEWAY_PORT=18789") == (
        "Environment=CLAWDBOT_GATEWAY_PORT=18789"
    )
    diff = unit_diff(Path("/u"), "Environment=X_TOKEN=s3cret\n", "Environment=Y=1\n")
    assert "s3cret" not in diff and "-Environment=X_TOKEN=(sensitive)" in diff


def test_token_value_check() -> None:
    assert has_value("A=1\nCLAWDBOT_GATEWAY_TOKEN=abc\n", "CLAWDBOT_GATEWAY_TOKEN")
    assert not has_value("CLAWDBOT_GATEWAY_TOKEN=\n", "CLAWDBOT_GATEWAY_TOKEN")
    assert not has_value("OTHER=abc\n", "CLAWDBOT_GATEWAY_TOKEN")


def unit_facts(spec, unit_text: str | None, *, gateway: str | None = GATEWAY, token=None):  # type: ignore[no-untyped-def]
    host = make_host()
    paths = profile_paths(spec, spec.profiles[0], host)
    unit = (
        PathState(paths.unit_file, "file", 0o644, 1000, "user", 1.0, 1.0, unit_text)
        if unit_text is not None
        else PathState(paths.unit_file, "missing")
    )
    where = located(host, clawdbot=gateway, node=NODE)
    found = facts(where)
    values = {
        **where,
        gateway_probe(spec, host, found): ProgramVersion(
            gateway, "2026.1.24-3" if gateway else None
        ),
        node_probe(host, found): ProgramVersion(NODE, "v22.12.0"),
        PathProbe(paths.unit_file, content=True): unit,
    }
    state = PathState(paths.state, "directory", 0o700, 1000, "user")
    values[PathProbe(paths.state)] = state
    values[PathProbe(paths.credentials)] = PathState(paths.credentials, "directory", 0o700, 1000)
    if token is not None:
        values[SecretEnvProbe(paths.token_env, "CLAWDBOT_GATEWAY_TOKEN")] = token
    return host, paths, facts(values)


def test_plan_create_then_in_sync() -> None:
    spec = gateway_spec(Profile("ops", 18809))
    host, paths, f = unit_facts(spec, None)
    (action,) = GatewayUnitKind().plan(spec, host, f).actions
    assert (action.address, action.kind) == ("profile[ops].unit", "create")
    (op,) = action.operations
    assert isinstance(op, WriteFile) and op.mode == 0o644 and op.path == paths.unit_file
    assert action.diff and action.diff.startswith("--- /dev/null")
    _, _, f2 = unit_facts(spec, op.content)
    assert GatewayUnitKind().plan(spec, host, f2).actions == ()


def test_plan_without_the_gateway_waits_for_runtime() -> None:
    spec = gateway_spec(Profile("ops", 18809))
    host, _, f = unit_facts(spec, None, gateway=None)
    (action,) = GatewayUnitKind().plan(spec, host, f).actions
    assert action.depends_on == ("runtime.gateway",)
    assert action.blocked and "runtime.gateway" in action.blocked and action.operations == ()


def test_plan_token_is_generated_at_apply_time_only() -> None:
    spec = gateway_spec(Profile("ops", 18809, auth="token"))
    missing = SecretEnvState(PathState(Path("/x"), "missing"), False)
    host, paths, f = unit_facts(spec, None, token=missing)
    (action,) = GatewayUnitKind().plan(spec, host, f).actions
    ensure, write = action.operations
    assert isinstance(ensure, EnsureSecretEnv) and ensure.mode == 0o600
    assert ensure.key == "CLAWDBOT_GATEWAY_TOKEN" and ensure.path == paths.token_env
    assert isinstance(write, WriteFile) and "TOKEN" not in write.content
    present = SecretEnvState(PathState(paths.token_env, "file", 0o600, 1000, "user"), True)
    _, _, f2 = unit_facts(spec, write.content, token=present)
    assert GatewayUnitKind().plan(spec, host, f2).actions == ()


def test_ensure_secret_env_creates_once_with_mode_0600(tmp_path: Path) -> None:
    env = tmp_path / "gateway.env"
    assert ensure_secret_env(env, "K_TOKEN", 0o600)
    first = env.read_text()
    assert first.startswith("K_TOKEN=") and len(first.strip()) == len("K_TOKEN=") + 64
    assert stat.S_IMODE(os.stat(env).st_mode) == 0o600
    os.chmod(env, 0o644)
    assert not ensure_secret_env(env, "K_TOKEN", 0o600)
    assert env.read_text() == first and stat.S_IMODE(os.stat(env).st_mode) == 0o600
    env.write_text("OTHER=1\nK_TOKEN=\n")
    assert ensure_secret_env(env, "K_TOKEN", 0o600)
    lines = env.read_text().splitlines()
    assert lines[0] == "OTHER=1" and lines[1].startswith("K_TOKEN=") and len(lines) == 2


def test_fake_host_token_never_in_unit_or_output(tmp_path: Path) -> None:
    gw = GatewayHost(tmp_path)
    spec = gateway_spec(Profile("ops", 18809, auth="token"))
    # what `clawdbot gateway install --profile ops` leaves: the token in the unit file
    gw.fake.install_gateway_unit("ops", port=18809, token="upstream-token-1f2e3d")
    probed = gw.probe(spec)
    rendered = render_plan(probed.plan, lambda c: c.display(), color=False) + str(
        plan_document(probed.plan, spec, hostname="h", probed_at="", wrap=lambda c: c.argv)
    )
    assert "upstream-token-1f2e3d" not in rendered
    assert "-Environment=CLAWDBOT_GATEWAY_TOKEN=(sensitive)" in rendered
    gw.converge(spec)
    env = gw.home / ".clawdbot-ops" / "gateway.env"
    token = env.read_text().strip().partition("=")[2]
    assert stat.S_IMODE(os.stat(env).st_mode) == 0o600 and len(token) == 64
    unit = (gw.fake.unit_dir / "clawdbot-gateway-ops.service").read_text()
    assert token not in unit and "upstream-token" not in unit
    assert f"EnvironmentFile={env}" in unit
    # generated once: a later change keeps it
    changed = gateway_spec(Profile("ops", 18829, auth="token"))
    probed = gw.probe(changed)
    assert token not in render_plan(probed.plan, lambda c: c.display(), color=False)
    gw.converge(changed)
    assert env.read_text().strip().partition("=")[2] == token
    # the running gateway got it through the unit's EnvironmentFile (not from the unit text)
    assert "profile[ops].unit" not in addresses(gw.plan(changed))


def test_openclaw_with_auth_none_keeps_one_stable_token(tmp_path: Path) -> None:
    """openclaw has no token-less mode across its releases (2026.9 makes up a new token at
    every start): `auth: none` on openclaw keeps one in gateway.env, as `auth: token` does;
    clawdbot with `auth: none` gets none."""
    gw = GatewayHost(tmp_path)
    gw.fake.set_gateway("2026.1.30", product="openclaw")
    spec = gateway_spec(Profile("ops", 18809), product="openclaw")
    gw.converge(spec)
    env = gw.home / ".openclaw-ops" / "gateway.env"
    token = env.read_text().strip().partition("=")[2]
    assert env.read_text().startswith("OPENCLAW_GATEWAY_TOKEN=") and len(token) == 64
    unit = (gw.fake.unit_dir / "openclaw-gateway-ops.service").read_text()
    assert f"EnvironmentFile={env}" in unit and token not in unit
    gw.converge(replace(spec, profiles=(Profile("ops", 18829),)))
    assert env.read_text().strip().partition("=")[2] == token  # the same token after a restart
    paths = profile_paths(gateway_spec(Profile("ops", 18809)), Profile("ops", 18809), make_host())
    clawdbot = gateway_spec(Profile("ops", 18809))
    text = render_unit(clawdbot, clawdbot.profiles[0], paths, USER.home, GATEWAY, NODE)
    assert "EnvironmentFile" not in text
