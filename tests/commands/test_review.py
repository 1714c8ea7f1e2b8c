"""The review commands end to end on the fake host: formats, --out, probe, --against, diff; and
no secret planted on the host reaches any output."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from fakehost import FakeHost
from plan_documents import assert_valid_plan
from plan_scenarios import SCENARIOS
from review_cli import SPEC, FakeHostCli, with_work_profile
from sealed_host import sealed_machine

from reconciler.app.context import AppContext
from reconciler.render.human import render_plan
from reconciler.review.saved_plan import load_saved_plan
from reconciler.review.snapshot import load_snapshot

SECRET = "sk-live-7d1e9a42-PLANTED-SECRET"
ANSI = "\x1b["


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(tmp_path)
    fake = FakeHost(tmp_path / "host")
    fake.set_node("v22.12.0")
    fake.set_gateway("2026.1.20")
    Path("vm102.yaml").write_text(SPEC)
    Path("new.yaml").write_text(with_work_profile(SPEC))
    yield FakeHostCli(fake)
    fake.close()


def without_time(text: str) -> dict[str, Any]:
    doc = json.loads(text)
    doc.pop("probed_at")
    return doc


def test_json_is_an_alias_of_format_json_and_validates(host: FakeHostCli) -> None:
    by_flag = host("plan", "vm102.yaml", "--json")
    by_format = host("plan", "vm102.yaml", "--format", "json")
    assert by_flag.exit_code == by_format.exit_code == 0
    assert without_time(by_flag.stdout) == without_time(by_format.stdout)
    assert_valid_plan(by_flag.stdout)
    doc = json.loads(by_flag.stdout)
    assert doc["spec"] == {"path": "vm102.yaml", "sha256": doc["spec"]["sha256"]}
    assert doc["source"] == {"type": "host"} and doc["host"]["invoker"] == "user"


def test_conflicting_format_options_are_a_usage_error(host: FakeHostCli) -> None:
    result = host("plan", "vm102.yaml", "--json", "--format", "markdown")
    assert result.exit_code == 64  # EX_USAGE: 2 means "changes" with --detailed-exitcode
    assert "--json and --format markdown disagree" in result.stderr


def test_markdown_and_detailed_exit_code(host: FakeHostCli) -> None:
    result = host("plan", "vm102.yaml", "--format", "markdown", "--detailed-exitcode")
    assert result.exit_code == 2
    assert result.stdout.startswith("**reconciler plan for `vm102`**: Plan: ")
    assert "<details><summary>Show the plan (" in result.stdout
    assert ANSI not in result.stdout


def test_probe_then_plan_against_the_snapshot(host: FakeHostCli) -> None:
    to_stdout = host("probe", "vm102.yaml")
    assert (
        to_stdout.exit_code == 0 and json.loads(to_stdout.stdout)["kind"] == "reconciler-snapshot"
    )
    to_file = host("probe", "vm102.yaml", "--out", "snap.json")
    assert to_file.exit_code == 0 and to_file.stdout == ""
    assert (
        "plan against it anywhere with: reconciler plan vm102.yaml --against snap.json"
        in to_file.stderr
    )
    assert load_snapshot(Path("snap.json")).snapshot.host.hostname == "vm102"

    live = host("plan", "new.yaml", "--json")
    offline = host("plan", "new.yaml", "--json", "--against", "snap.json")
    assert offline.exit_code == live.exit_code == 0
    assert_valid_plan(offline.stdout)
    doc = json.loads(offline.stdout)
    assert doc["source"]["type"] == "snapshot" and doc["source"]["path"] == "snap.json"
    assert doc["actions"] == json.loads(live.stdout)["actions"]
    assert any(a["address"] == "profile[work].unit" for a in doc["actions"])

    human = host("plan", "new.yaml", "--against", "snap.json")
    assert human.stdout.startswith(
        "Plan for vm102 (user user) from new.yaml, against snapshot snap.json:"
    )


def test_a_saved_plan_from_a_snapshot_is_checked_against_the_live_host(host: FakeHostCli) -> None:
    # The PR flow: CI plans against the snapshot and saves the plan; after the merge the host
    # applies it only if the live plan is the same.
    host("probe", "vm102.yaml", "--out", "snap.json")
    result = host("plan", "vm102.yaml", "--against", "snap.json", "--out", "plan.json")
    assert result.exit_code == 0, result.output
    assert load_saved_plan(Path("plan.json")).document["source"]["type"] == "snapshot"
    host.check_saved_plan(Path("plan.json"))


def test_snapshot_errors_are_one_line(host: FakeHostCli) -> None:
    result = host("plan", "vm102.yaml", "--against", "missing.json")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: missing.json: cannot read the snapshot")
    Path("spec-as-snapshot.json").write_text(SPEC)
    result = host("plan", "vm102.yaml", "--against", "spec-as-snapshot.json")
    assert result.exit_code == 1 and "not a snapshot" in result.stderr


def test_diff_of_two_spec_versions(host: FakeHostCli) -> None:
    same = host("diff", "vm102.yaml", "vm102.yaml", "--detailed-exitcode")
    assert same.exit_code == 0 and "No change: the two files are identical." in same.stdout
    changed = host("diff", "vm102.yaml", "new.yaml", "--detailed-exitcode")
    assert changed.exit_code == 2
    assert '+ profiles.work.unit: "clawdbot-gateway-work.service"' in changed.stdout
    assert '+ profiles.work.state_dir: "~user/.clawdbot-work"' in changed.stdout
    doc = json.loads(host("diff", "vm102.yaml", "new.yaml", "--format", "json").stdout)
    assert doc["summary"]["added"] > 0 and doc["summary"]["removed"] == 0
    assert {
        "path": "profiles.work.port",
        "op": "add",
        "before": None,
        "after": 18829,
        "sensitive": False,
    } in doc["changes"]
    markdown = host("diff", "vm102.yaml", "new.yaml", "--format", "markdown").stdout
    assert markdown.startswith("**reconciler diff for `vm102`**: Desired state: ")


# --- colour ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tty", "no_color_env", "flag", "expected"),
    [
        (True, None, False, True),
        (True, "", False, True),  # NO_COLOR set but empty: colour (no-color.org)
        (True, "1", False, False),
        (True, None, True, False),
        (False, None, False, False),
    ],
)
def test_colour_only_on_a_terminal_without_no_color(
    monkeypatch: pytest.MonkeyPatch, tty: bool, no_color_env: str | None, flag: bool, expected: bool
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: tty)
    if no_color_env is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color_env)
    assert AppContext().use_color(flag) is expected


def test_colour_is_only_in_the_human_format() -> None:
    plan = SCENARIOS["public-exposure"].probed().plan
    assert ANSI in render_plan(plan, lambda c: c.display(), color=True)
    assert ANSI not in render_plan(plan, lambda c: c.display(), color=False)


# --- secrets --------------------------------------------------------------------------------------


def plant_secrets(fake: FakeHost) -> None:
    """A known secret everywhere a host keeps one (and in places it should not be)."""
    state = fake.home / ".clawdbot-ops"
    state.mkdir(parents=True, mode=0o700)
    (state / "clawdbot.json").write_text(
        f'{{gateway: {{port: 18000, auth: {{mode: "token", token: "{SECRET}"}}}},'
        f' channels: {{telegram: {{botToken: "{SECRET}"}}}}}}'
    )
    (state / "clawdbot.json").chmod(0o644)
    (state / "gateway.env").write_text(f"CLAWDBOT_GATEWAY_TOKEN={SECRET}\n")
    (state / "gateway.env").chmod(0o644)
    fake.install_gateway_unit("ops", port=18809, token=SECRET)  # upstream puts it in the unit
    fake.install_gateway_unit(port=18000, token=SECRET)  # a legacy unit, token included
    fake.add_stray_listener(18829, ["node", "server.js", f"--token={SECRET}"])
    fake.set_serve_config(
        {
            "TCP": {"8443": {"HTTPS": True}},
            "Web": {
                f"{fake.dns_name}:8443": {
                    "Handlers": {"/": {"Proxy": f"http://127.0.0.1:3000/?token={SECRET}"}}
                }
            },
        }
    )


def test_a_planted_secret_appears_in_no_output_and_no_file(host: FakeHostCli) -> None:
    plant_secrets(host.fake)
    outputs: dict[str, str] = {}

    def run(name: str, *args: str) -> str:
        result = host(*args)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        outputs[name] = result.output  # stdout and stderr
        return result.stdout

    for fmt in ("human", "json", "markdown"):
        run(f"plan {fmt}", "plan", "vm102.yaml", "--format", fmt)
    run("plan --out", "plan", "vm102.yaml", "--out", "plan.json")
    run("probe", "probe", "vm102.yaml")
    run("probe --out", "probe", "vm102.yaml", "--out", "snap.json")
    for fmt in ("human", "json", "markdown"):
        # new.yaml puts a profile on the stray listener's port: its command line is in an error
        run(f"against {fmt}", "plan", "new.yaml", "--against", "snap.json", "--format", fmt)
        run(f"live new {fmt}", "plan", "new.yaml", "--format", fmt)
        run(f"diff {fmt}", "diff", "vm102.yaml", "new.yaml", "--format", fmt)
    run("apply --dry-run", "apply", "vm102.yaml", "--dry-run")
    outputs["plan.json"] = Path("plan.json").read_text()
    outputs["snap.json"] = Path("snap.json").read_text()

    leaks = sorted(name for name, text in outputs.items() if SECRET in text)
    assert leaks == []
    # ... and the places the secret was are shown, redacted
    assert "-Environment=CLAWDBOT_GATEWAY_TOKEN=(sensitive)" in outputs["plan human"]
    assert "--token=(sensitive)" in outputs["live new human"]
    assert "token=(sensitive)" in outputs["plan markdown"]
    assert "profile[ops].config" in outputs["plan json"]
    # the host really held it (the test would prove nothing otherwise)
    assert SECRET in (host.fake.home / ".clawdbot-ops/clawdbot.json").read_text()
    assert_valid_plan(outputs["plan.json"])


def test_plan_against_a_snapshot_reads_nothing_of_this_machine(host: FakeHostCli) -> None:
    """The whole command, as a non-root user (so the sudo hints are made too): the spec and the
    snapshot are the only files it opens; no stat, listing, PATH lookup or subprocess."""
    assert host("probe", "vm102.yaml", "--out", "snap.json").exit_code == 0
    # Another operator: `tailscale set --operator` is root-only, so sudo is asked about it.
    Path("other.yaml").write_text(SPEC.replace("operator: user", "operator: root"))
    allowed = [Path(p) for p in ("other.yaml", "snap.json")]
    allowed += [p.absolute() for p in allowed]
    with sealed_machine(allowed):
        offline = host("plan", "other.yaml", "--against", "snap.json")
    assert offline.exception is None or isinstance(offline.exception, SystemExit), offline.output
    assert offline.exit_code == 0, offline.output
    assert "blocked" in offline.stdout and "sudoers rule" in offline.stdout
