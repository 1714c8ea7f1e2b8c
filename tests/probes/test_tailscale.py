"""Tailscale parsers against recorded real-format outputs (tests/data/probes/tailscale/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.core.command import Command, CommandResult
from reconciler.facts.tailscale import (
    ServeStatusProbe,
    TailscalePrefsProbe,
    TailscaleStatusProbe,
    normalize_target,
)

DATA = Path(__file__).parents[1] / "data/probes/tailscale"


def result(
    stdout: str = "", stderr: str = "", code: int | None = 0, error: str | None = None
) -> CommandResult:
    return CommandResult(Command(("tailscale",)), ("tailscale",), code, stdout, stderr, error)


def recorded(name: str) -> str:
    return (DATA / name).read_text()


@pytest.mark.parametrize(
    ("fixture", "backend", "https", "blocker"),
    [
        ("status-running-https.json", "Running", True, None),
        ("status-needslogin.json", "NeedsLogin", False, "BackendState NeedsLogin"),
        ("status-stopped.json", "Stopped", True, "BackendState Stopped"),  # the tailnet keeps HTTPS
    ],
)
def test_status(fixture: str, backend: str, https: bool, blocker: str | None) -> None:
    status = TailscaleStatusProbe().parse(result(recorded(fixture)))
    assert (status.reachability, status.backend_state, status.https_enabled) == (
        "ok",
        backend,
        https,
    )
    if backend == "Running":
        assert status.dns_name == "vm102.tail1234.ts.net"  # the trailing dot is gone
    found = status.serve_blocker()
    assert (found is None) if blocker is None else (blocker in (found or ""))


@pytest.mark.parametrize("fixture", ["stderr-daemon-down.txt", "stderr-daemon-down-serve.txt"])
def test_a_stopped_daemon_is_a_fact_for_every_command(fixture: str) -> None:
    failed = result(stderr=recorded(fixture), code=1)
    assert TailscaleStatusProbe().parse(failed).detail == "tailscaled: not running"
    assert ServeStatusProbe().parse(failed).reachability == "daemon-down"
    assert TailscalePrefsProbe().parse(failed).reachability == "daemon-down"


def test_not_installed_is_a_fact() -> None:
    missing = result(code=None, error="not installed")
    assert TailscaleStatusProbe().parse(missing).serve_blocker() == "tailscale: not installed"
    assert ServeStatusProbe().parse(missing).reachability == "not-installed"


@pytest.mark.parametrize(
    "fixture", ["serve-status-empty-braces.json", "serve-status-empty-null.json"]
)
def test_empty_serve_config_is_empty_whether_braces_or_null(fixture: str) -> None:
    config = ServeStatusProbe().parse(result(recorded(fixture)))
    assert (config.reachability, config.web, config.funnel) == ("ok", (), ())


def test_two_ports_with_a_funnel() -> None:
    config = ServeStatusProbe().parse(result(recorded("serve-status-two-ports.json")))
    assert [(m.host, m.port, m.root_proxy()) for m in config.web] == [
        ("vm102.tail1234.ts.net", 443, "http://127.0.0.1:18789"),
        ("vm102.tail1234.ts.net", 8443, "http://127.0.0.1:18809"),
    ]
    assert config.funnel == ("vm102.tail1234.ts.net:443",)


def test_foreground_sessions_and_services_are_kept_apart() -> None:
    foreground = ServeStatusProbe().parse(result(recorded("serve-status-foreground-funnel.json")))
    assert foreground.foreground_sessions and foreground.foreground_funnel
    services = ServeStatusProbe().parse(result(recorded("serve-status-services.json")))
    assert services.services
    doc = json.loads(recorded("serve-status-services.json"))
    assert all(m.host + ":" + str(m.port) in doc.get("Web", {}) for m in services.web)


@pytest.mark.parametrize(
    ("fixture", "operator"),
    [("debug-prefs-operator.json", "user"), ("debug-prefs-no-operator.json", None)],
)
def test_operator_from_debug_prefs(fixture: str, operator: str | None) -> None:
    assert TailscalePrefsProbe().parse(result(recorded(fixture))).operator == operator


def test_garbage_is_a_probe_failure_not_a_crash() -> None:
    from reconciler.core.probe import ProbeFailed

    with pytest.raises(ProbeFailed, match="not JSON"):
        ServeStatusProbe().parse(result("Logged out.\n"))


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("18789", "http://127.0.0.1:18789"),
        ("127.0.0.1:18789", "http://127.0.0.1:18789"),
        ("http://127.0.0.1:18789", "http://127.0.0.1:18789"),
        ("http://127.0.0.1:18789/", "http://127.0.0.1:18789"),
        ("localhost:18789", "http://localhost:18789"),
        ("https+insecure://127.0.0.1:8443", "https+insecure://127.0.0.1:8443"),
    ],
)
def test_targets_are_normalised_as_tailscale_stores_them(given: str, stored: str) -> None:
    assert normalize_target(given) == stored
