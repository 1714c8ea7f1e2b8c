"""Backup inventory: the runbook's paths per profile, and the three renderings."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from click.testing import CliRunner

from reconciler.app.inventory import inventory, render_json, render_restic, render_text, restic_line
from reconciler.core.host import Account, HostContext
from reconciler.spec.model import GatewayRuntime, Host, Node, Profile, Runtime, Spec

USER = Account("user", 1000, 1000, Path("/home/user"))
HOST = HostContext("vm102", USER, USER, "user")
SPEC = Spec(
    host=Host("vm102", "user"),
    runtime=Runtime(node=Node(), gateway=GatewayRuntime("clawdbot")),
    profiles=(Profile("default", 18789), Profile("ops", 18809, workspace="~/work/ops")),
)
PRESENT = {
    Path("/home/user/.clawdbot/clawdbot.json"),
    Path("/home/user/.clawdbot/credentials"),
    Path("/home/user/.clawdbot/agents"),
    Path("/home/user/clawd"),
    Path("/home/user/.clawdbot-ops/devices"),
    Path("/home/user/.clawdbot-ops/gateway.env"),
}


def test_paths_per_profile_in_runbook_order() -> None:
    default, ops = inventory(SPEC, HOST, lambda p: p in PRESENT)
    assert default.state == Path("/home/user/.clawdbot")
    assert [(p.label, str(p.path), p.exists) for p in default.paths] == [
        ("config", "/home/user/.clawdbot/clawdbot.json", True),
        ("gateway.env", "/home/user/.clawdbot/gateway.env", False),
        ("credentials", "/home/user/.clawdbot/credentials", True),
        ("agents", "/home/user/.clawdbot/agents", True),
        ("devices", "/home/user/.clawdbot/devices", False),
        ("identity", "/home/user/.clawdbot/identity", False),
        ("workspace", "/home/user/clawd", True),
    ]
    assert ops.paths[-1].path == Path("/home/user/work/ops")
    assert [p.label for p in ops.paths if p.exists] == ["gateway.env", "devices"]


def test_text_and_json() -> None:
    found = inventory(SPEC, HOST, lambda p: p in PRESENT)
    text = render_text(found)
    assert "profile default (state /home/user/.clawdbot)" in text
    assert "  exists   credentials  /home/user/.clawdbot/credentials/" in text
    assert "  missing  identity     /home/user/.clawdbot/identity/" in text
    doc = json.loads(render_json(found, SPEC))
    assert doc["format_version"] == "1" and doc["user"] == "user"
    assert doc["profiles"][1]["paths"][4] == {
        "label": "devices",
        "path": "/home/user/.clawdbot-ops/devices",
        "directory": True,
        "exists": True,
    }


def test_restic_include_file() -> None:
    text = render_restic(inventory(SPEC, HOST, lambda p: p in PRESENT), SPEC)
    lines = text.splitlines()
    paths = [line for line in lines if line and not line.startswith("#")]
    assert paths == [
        "/home/user/.clawdbot/clawdbot.json",
        "/home/user/.clawdbot/credentials",
        "/home/user/.clawdbot/agents",
        "/home/user/clawd",
        "/home/user/.clawdbot-ops/gateway.env",  # issue 22: the token a restore needs
        "/home/user/.clawdbot-ops/devices",
    ]
    assert "# missing: identity /home/user/.clawdbot/identity" in lines
    assert "# missing: gateway.env /home/user/.clawdbot/gateway.env" in lines
    assert all(line.startswith(("#", "/")) for line in lines)
    assert restic_line(Path("/srv/a*b[1]")) == "/srv/a\\*b\\[1]"


def test_cli_state_paths(tmp_path: Path) -> None:
    from reconciler.app.context import AppContext
    from reconciler.cli import cli

    home = tmp_path / "home"
    (home / ".clawdbot-ops").mkdir(parents=True)
    (home / ".clawdbot-ops" / "clawdbot.json").write_text("{}")
    account = Account("user", 1000, 1000, home)
    spec = Spec(
        host=Host("vm102", "user"),
        runtime=Runtime(node=Node(), gateway=GatewayRuntime("clawdbot")),
        profiles=(Profile("ops", 18809),),
    )
    app = AppContext(
        spec_loader=lambda path: spec,
        discover_host=lambda s: HostContext("vm102", account, account, "user"),
    )
    result = CliRunner().invoke(cli, ["state-paths", "x.yaml", "--format", "restic"], obj=app)
    assert result.exit_code == 0, result.output
    assert f"{home}/.clawdbot-ops/clawdbot.json\n" in result.output
    assert f"# missing: credentials {home}/.clawdbot-ops/credentials" in result.output
    as_json = CliRunner().invoke(cli, ["state-paths", "x.yaml", "--format", "json"], obj=app)
    assert json.loads(as_json.output)["profiles"][0]["name"] == "ops"
    no_user = replace(app, discover_host=lambda s: HostContext("vm102", account, None, "user"))
    missing = CliRunner().invoke(cli, ["state-paths", "x.yaml"], obj=no_user)
    assert missing.exit_code == 0 and "missing" in missing.output
    # Issue 12 #7: state-paths checks the host like plan and apply do.
    elsewhere = replace(app, discover_host=lambda s: HostContext("vm103", account, account, "user"))
    refused = CliRunner().invoke(cli, ["state-paths", "x.yaml"], obj=elsewhere)
    assert (
        refused.exit_code == 1
        and "is for host 'vm102' but this machine is 'vm103'" in refused.stderr
    )
    off = ["state-paths", "x.yaml", "--host-check=off"]
    assert CliRunner().invoke(cli, off, obj=elsewhere).exit_code == 0
