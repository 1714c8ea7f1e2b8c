"""The gateway config: owned keys only, everything else kept, secrets never shown."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import json5
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.core.action import WriteFile
from reconciler.facts.files import PathProbe, PathState, backup_path
from reconciler.kinds.gateway_config import (
    ConfigUnreadable,
    GatewayConfigKind,
    compare,
    owned_config_text,
    parse_config,
    render_config,
)
from reconciler.render.human import render_plan
from reconciler.render.json_plan import plan_document
from reconciler.spec.model import Profile

from .gateway_host import GatewayHost, addresses, gateway_spec
from .helpers import facts, make_host

SECRET = "sk-live-DO-NOT-PRINT-4f1c9a"
PASSWORD = "hunter2-correct-horse"

# What a user's config looks like after onboarding and some hand edits.
USER_CONFIG = f"""// clawdbot config, edited by hand
{{
  agents: {{ defaults: {{ model: "anthropic/claude-opus-4-5" }}, }},
  gateway: {{
    mode: "local",
    port: 18789,            // old port
    auth: {{ mode: "token", token: "{SECRET}" }},
    tailscale: {{ mode: "serve", resetOnExit: true }},
  }},
  channels: {{ telegram: {{ botToken: "{PASSWORD}", enabled: true }} }},
  /* trailing comma below */
  wizard: {{ lastRunAt: "2026-01-20T10:00:00Z" }},
}}
"""

PROFILE = Profile("ops", 18809)
CONFIG = Path("/home/user/.clawdbot-ops/clawdbot.json")
STATE = Path("/home/user/.clawdbot-ops")


def test_json5_with_comments_trailing_commas_and_bare_keys() -> None:
    doc = parse_config(USER_CONFIG, "c.json")
    assert doc["gateway"]["auth"]["token"] == SECRET
    assert list(doc) == ["agents", "gateway", "channels", "wizard"]
    assert parse_config("  \n", "c.json") == {}


def test_parse_errors_name_line_and_column_but_never_content() -> None:
    broken = '{\n  gateway: { token: "' + SECRET + '" }\n  oops here\n}\n'
    with pytest.raises(ConfigUnreadable) as caught:
        parse_config(broken, "/x/clawdbot.json")
    message = str(caught.value)
    assert message.startswith("/x/clawdbot.json:3:")
    assert SECRET not in message and "oops" not in message
    with pytest.raises(ConfigUnreadable, match="top level is not an object"):
        parse_config("[1, 2]", "c.json")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(doc=st.dictionaries(st.text(), _JSON, max_size=5), indent=st.sampled_from([None, 2]))
def test_plain_json_reads_as_json5_reads_it(doc: dict[str, object], indent: int | None) -> None:
    """The stdlib fast path (no json5 import) must mean exactly what json5 means."""
    text = json.dumps(doc, indent=indent, ensure_ascii=False)
    assert parse_config(text, "c.json") == json5.loads(text, strict=False)
    assert parse_config("\ufeff" + text, "c.json") == json5.loads(text, strict=False)


def test_compare_touches_owned_keys_only() -> None:
    doc = parse_config(USER_CONFIG, "c.json")
    result = compare(doc, PROFILE, "c.json")
    assert not result.in_sync
    assert result.desired == {
        "gateway.mode": "local",
        "gateway.port": 18809,
        "gateway.bind": "loopback",
        "gateway.tailscale.mode": "off",
    }
    assert result.actual == {
        "gateway.mode": "local",
        "gateway.port": 18789,
        "gateway.tailscale.mode": "serve",
    }
    merged = result.merged
    assert merged["gateway"]["tailscale"] == {"mode": "off", "resetOnExit": True}
    assert merged["gateway"]["auth"] == doc["gateway"]["auth"]
    assert merged["channels"] == doc["channels"] and merged["wizard"] == doc["wizard"]
    # never a key of our own; the original order is kept, new keys go last
    assert list(merged) == list(doc)
    assert list(merged["gateway"]) == ["mode", "port", "auth", "tailscale", "bind"]
    assert doc["gateway"]["port"] == 18789  # the input is not modified


def test_comparison_is_type_strict() -> None:
    doc = {"gateway": {"mode": "local", "port": "18809", "bind": "loopback"}}
    doc["gateway"]["tailscale"] = {"mode": "off"}
    assert not compare(doc, PROFILE, "c").in_sync
    doc["gateway"]["port"] = 18809
    assert compare(doc, PROFILE, "c").in_sync


def test_a_served_profile_trusts_loopback_as_its_proxy_and_keeps_other_proxies() -> None:
    """Tailscale Serve connects from 127.0.0.1 with X-Forwarded-For: a served profile's
    config must list 127.0.0.1 in gateway.trustedProxies (openclaw 2026.9 answers 403
    otherwise); the user's other proxies stay; an unserved profile's key is not ours."""
    base = {"gateway": {"mode": "local", "port": 18809, "bind": "loopback"}}
    base["gateway"]["tailscale"] = {"mode": "off"}
    assert compare(base, PROFILE, "c").in_sync  # not served: not owned
    added = compare(base, PROFILE, "c", proxied=True)
    assert not added.in_sync and added.merged["gateway"]["trustedProxies"] == ["127.0.0.1"]
    assert added.desired["gateway.trustedProxies"] == ["127.0.0.1"]
    theirs = {"gateway": {**base["gateway"], "trustedProxies": ["10.0.0.5"]}}
    merged = compare(theirs, PROFILE, "c", proxied=True)
    assert merged.merged["gateway"]["trustedProxies"] == ["10.0.0.5", "127.0.0.1"]
    kept = {"gateway": {**base["gateway"], "trustedProxies": ["10.0.0.5", "127.0.0.1"]}}
    assert compare(kept, PROFILE, "c", proxied=True).in_sync
    # the snapshot's reduced config keeps the addresses (no secret), so it plans the same
    text, _ = owned_config_text(json.dumps(kept))
    assert text is not None and compare(parse_config(text, "c"), PROFILE, "c", proxied=True).in_sync


def test_a_non_object_on_the_way_is_an_error_without_its_value() -> None:
    with pytest.raises(ConfigUnreadable) as caught:
        compare({"gateway": SECRET}, PROFILE, "c.json")
    assert "`gateway` is not an object" in str(caught.value) and SECRET not in str(caught.value)


def test_subtrees_at_owned_keys_are_not_shown() -> None:
    doc = {"gateway": {"mode": {"token": SECRET}}}
    assert compare(doc, PROFILE, "c").actual["gateway.mode"] == "(dict)"


def test_rendering_is_valid_json5_and_stable() -> None:
    doc = compare(parse_config(USER_CONFIG, "c"), PROFILE, "c").merged
    text = render_config(doc)
    assert json5.loads(text) == doc and json.loads(text) == doc
    assert render_config(json5.loads(text)) == text


def file_state(text: str | None, mode: int = 0o600, uid: int = 1000) -> PathState:
    if text is None:
        return PathState(CONFIG, "missing")
    return PathState(CONFIG, "file", mode, uid, "user", 1.0, 1.0, text)


def plan_for(config: PathState):  # type: ignore[no-untyped-def]
    state = PathState(STATE, "directory", 0o700, 1000, "user")
    creds = PathState(STATE / "credentials", "directory", 0o700, 1000, "user")
    work = PathState(Path("/home/user/clawd-ops"), "directory", 0o700, 1000, "user")
    values = {
        PathProbe(CONFIG, content=True): config,
        PathProbe(STATE): state,
        PathProbe(STATE / "credentials"): creds,
        PathProbe(work.path): work,
    }
    return GatewayConfigKind().plan(gateway_spec(PROFILE), make_host(), facts(values))


def the_write(result) -> WriteFile:  # type: ignore[no-untyped-def]
    (action,) = result.actions
    (op,) = action.operations
    assert isinstance(op, WriteFile)
    return op


def test_plan_missing_config_creates_owned_keys_only() -> None:
    result = plan_for(file_state(None))
    op = the_write(result)
    assert result.actions[0].kind == "create"
    assert json.loads(op.content) == {
        "gateway": {
            "mode": "local",
            "port": 18809,
            "bind": "loopback",
            "tailscale": {"mode": "off"},
        }
    }
    assert op.mode == 0o600 and op.sensitive and op.backup


def test_plan_in_sync_is_empty_and_mode_drift_keeps_the_text() -> None:
    text = "// mine\n{gateway: {mode: 'local', port: 18809, bind: 'loopback', tailscale: {mode: 'off'}}}"
    assert plan_for(file_state(text)).actions == ()
    result = plan_for(file_state(text, mode=0o644))
    op = the_write(result)
    assert op.content == text  # comments kept: only the mode changes
    assert [(c.path, c.before, c.after) for c in result.actions[0].changes] == [
        ("mode", "0644", "0600")
    ]


def test_plan_changes_show_owned_keys_and_no_secret() -> None:
    result = plan_for(file_state(USER_CONFIG))
    (action,) = result.actions
    assert {c.path for c in action.changes} == {
        "gateway.port",
        "gateway.bind",
        "gateway.tailscale.mode",
    }
    assert "comments and formatting are not kept" in action.reason
    assert action.diff is None
    visible = (
        repr(action.changes) + action.reason + "".join(o.describe() for o in action.operations)
    )
    assert SECRET not in visible and PASSWORD not in visible
    assert SECRET not in repr(file_state(USER_CONFIG))  # facts do not print the text either


def test_unreadable_and_odd_files_are_errors() -> None:
    result = plan_for(PathState(CONFIG, "file", 0o600, 1000, "user", error="Permission denied"))
    assert result.actions == () and "never overwritten" in result.errors[0]
    result = plan_for(PathState(CONFIG, "symlink", 0o777, 1000, "user"))
    assert result.actions == () and "is a symbolic link, not a regular file" in result.errors[0]


# --- on the fake host ---------------------------------------------------------------------------


def test_fake_host_keeps_every_unmanaged_key_and_hides_secrets(tmp_path: Path) -> None:
    gw = GatewayHost(tmp_path)
    spec = gateway_spec(PROFILE)
    state = gw.home / ".clawdbot-ops"
    state.mkdir(mode=0o700)
    config = state / "clawdbot.json"
    config.write_text(USER_CONFIG)
    os.chmod(config, 0o644)
    before = json5.loads(USER_CONFIG)

    probed = gw.probe(spec)
    text = render_plan(probed.plan, lambda c: c.display(), color=False)
    doc = json.dumps(
        plan_document(
            probed.plan, spec, hostname="vm102", probed_at=probed.probed_at, wrap=lambda c: c.argv
        )
    )
    for output in (text, doc):
        assert "profile[ops].config" in output
        assert SECRET not in output and PASSWORD not in output
    result = gw.apply(spec)
    assert result.ok
    details = " ".join(f"{o.detail} {[r.detail for r in o.operations]}" for o in result.outcomes)
    assert SECRET not in details and PASSWORD not in details

    after = json.loads(config.read_text())
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    assert after["gateway"]["port"] == 18809 and after["gateway"]["tailscale"]["mode"] == "off"
    assert after["gateway"]["tailscale"]["resetOnExit"] is True
    for key in ("agents", "channels", "wizard"):
        assert after[key] == before[key]
    assert after["gateway"]["auth"] == before["gateway"]["auth"]
    backup = backup_path(config)
    assert backup.read_text() == USER_CONFIG
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    assert "profile[ops].config" not in addresses(gw.plan(spec))


def test_fake_host_unparsable_config_is_never_overwritten(tmp_path: Path) -> None:
    gw = GatewayHost(tmp_path)
    spec = gateway_spec(PROFILE)
    state = gw.home / ".clawdbot-ops"
    state.mkdir(mode=0o700)
    config = state / "clawdbot.json"
    broken = '{\n  gateway: {\n    token: "' + SECRET + '",\n    port: 18789 18790\n  }\n}\n'
    config.write_text(broken)
    plan = gw.plan(spec)
    (error,) = [e for e in plan.errors if "config" in e]
    assert f"{config}:4:" in error and SECRET not in error
    assert "profile[ops].config" not in addresses(plan)
    assert config.read_text() == broken
