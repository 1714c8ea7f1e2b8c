"""The desired state a spec resolves to, and the change between two versions of a spec."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from plan_scenarios import SPEC_TEXT, spec_from

from reconciler.cli import cli
from reconciler.render.desired_diff import change_line
from reconciler.review.desired_state import desired_changes, desired_state, flatten, merge

BACKUP = """backup:
  repository: ~/backups/gateway
  password_file: ~/.config/restic/password
  retention: {keep_daily: 7}
"""


def changes(old: str, new: str) -> list[str]:
    return [change_line(c) for c in desired_changes(spec_from(old), spec_from(new))]


def test_a_spec_resolves_to_concrete_paths_units_and_targets() -> None:
    doc = desired_state(spec_from(SPEC_TEXT))
    ops = doc["profiles"]["ops"]
    assert ops["unit"] == "clawdbot-gateway-ops.service"
    assert ops["unit_file"] == "~user/.config/systemd/user/clawdbot-gateway-ops.service"
    assert ops["state_dir"] == "~user/.clawdbot-ops"
    assert ops["environment_file"] == "~user/.clawdbot-ops/gateway.env"
    assert ops["config"] == {
        "gateway.mode": "local",
        "gateway.port": 18809,
        "gateway.bind": "loopback",
        "gateway.tailscale.mode": "off",
    }
    assert doc["tailscale"]["serve"]["443"]["target"] == "http://127.0.0.1:18789"
    assert (
        desired_state(spec_from(SPEC_TEXT), Path("/home/u"))["profiles"]["ops"]["state_dir"]
        == "/home/u/.clawdbot-ops"
    )


def test_a_port_change_shows_everything_that_follows_from_it() -> None:
    assert changes(SPEC_TEXT, SPEC_TEXT.replace("port: 18789", "port: 18769")) == [
        "~ profiles.personal.config.gateway.port: 18789 -> 18769",
        '~ profiles.personal.environment.CLAWDBOT_GATEWAY_PORT: "18789" -> "18769"',
        '~ profiles.personal.exec_start: "clawdbot gateway --port 18789" -> "clawdbot gateway --port 18769"',
        "~ profiles.personal.port: 18789 -> 18769",
        '~ profiles.personal.serve_target: "http://127.0.0.1:18789" -> "http://127.0.0.1:18769"',
        '~ tailscale.serve.443.target: "http://127.0.0.1:18789" -> "http://127.0.0.1:18769"',
    ]


def test_a_product_rename_changes_units_and_paths() -> None:
    # the package moves with the product (validate refuses openclaw with clawdbot's package)
    renamed = SPEC_TEXT.replace("linger: true", "product: openclaw\nlinger: true").replace(
        "package: clawdbot", "package: openclaw"
    )
    lines = changes(SPEC_TEXT, renamed)
    assert '~ product: "clawdbot" -> "openclaw"' in lines
    assert (
        '~ profiles.ops.unit: "clawdbot-gateway-ops.service" -> "openclaw-gateway-ops.service"'
        in lines
    )
    assert '~ profiles.ops.state_dir: "~user/.clawdbot-ops" -> "~user/.openclaw-ops"' in lines
    assert any(line.startswith("- profiles.ops.environment.CLAWDBOT_PROFILE") for line in lines)
    assert any(line.startswith("+ profiles.ops.environment.OPENCLAW_PROFILE") for line in lines)


def test_removing_tailscale_removes_its_values() -> None:
    without = SPEC_TEXT[: SPEC_TEXT.index("tailscale:")] + SPEC_TEXT[SPEC_TEXT.index("profiles:") :]
    lines = changes(SPEC_TEXT, without)
    assert '- tailscale.operator: "user"' in lines
    assert '- tailscale.serve.443.target: "http://127.0.0.1:18789"' in lines
    # without a serve entry the profile no longer needs 127.0.0.1 as a trusted proxy
    assert '- profiles.personal.config.gateway.trustedProxies: ["127.0.0.1"]' in lines
    assert all(line.startswith(("- tailscale.", "- profiles.personal.config.")) for line in lines)


def test_a_reformatted_spec_changes_nothing() -> None:
    reformatted = "# comment\n" + SPEC_TEXT.replace(
        "  ops:\n    port: 18809\n", "  ops: {port: 18809,"
    )
    reformatted = reformatted.replace("    auth: token\n", " auth: token}\n")
    assert changes(SPEC_TEXT, reformatted) == []


def test_flatten_leaves_out_nulls_and_keeps_empty_sections() -> None:
    assert flatten({"a": {"b": None, "c": 1}, "d": {}, "e": None}) == {"a.c": 1, "d": {}}


def test_the_diff_comment_calls_out_public_exposure_and_removed_profiles() -> None:
    from reconciler.app.review import diff_specs
    from reconciler.render.desired_diff import render_markdown

    exposed = SPEC_TEXT.replace(
        "  operator: user\n", "  operator: user\n  funnel: allow\n"
    ).replace("      profile: personal\n", "      profile: personal\n      funnel: true\n")
    without_ops = exposed.replace("  ops:\n    port: 18809\n    auth: token\n", "")
    text = render_markdown(diff_specs(spec_from(SPEC_TEXT), spec_from(without_ops)))
    assert "> [!CAUTION]" in text
    assert "> - `~ tailscale.serve.443.funnel: false -> true`: public on the internet" in text
    assert "> - profile `ops` is removed from the spec" in text
    plain = render_markdown(diff_specs(spec_from(SPEC_TEXT), spec_from(SPEC_TEXT)))
    assert "[!CAUTION]" not in plain


def test_two_owners_of_one_value_is_an_error() -> None:
    assert merge([("a", {"p": {"x": 1}}), ("b", {"p": {"y": 2}})]) == {"p": {"x": 1, "y": 2}}
    with pytest.raises(ValueError, match=r"p\.x: given by a and b"):
        merge([("a", {"p": {"x": 1}}), ("b", {"p": {"x": 1}})])
    with pytest.raises(ValueError, match="p: given by a and b"):
        merge([("a", {"p": 1}), ("b", {"p": {"x": 1}})])


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        ("~/backups/gateway", "sftp:nas:/restic", '~ backup.repository: "~user/backups/gateway"'),
        ("keep_daily: 7", "keep_daily: 8", "~ backup.retention.keep_daily: 7 -> 8"),
        ("retention:", "consistency: live\n  retention:", '~ backup.consistency: "stop" -> "live"'),
    ],
)
def test_diff_sees_what_moves_the_backups(tmp_path: Path, old: str, new: str, line: str) -> None:
    # Issue 19: `diff --detailed-exitcode` said "No change" (exit 0) for these.
    before = SPEC_TEXT + BACKUP
    (tmp_path / "old.yaml").write_text(before)
    (tmp_path / "new.yaml").write_text(before.replace(old, new))
    result = CliRunner().invoke(
        cli,
        ["diff", str(tmp_path / "old.yaml"), str(tmp_path / "new.yaml"), "--detailed-exitcode"],
    )
    assert result.exit_code == 2, result.output
    assert line in result.output
