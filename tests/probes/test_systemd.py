"""The batched `systemctl --user show` probe, against recorded real-format output."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.core.command import Command, CommandResult
from reconciler.core.host import Account, HostContext
from reconciler.core.probe import ProbeFailed, ProbeSession
from reconciler.facts.systemd import (
    PROPERTIES,
    UnitStatusProbe,
    parse_show_blocks,
    parse_timestamp,
    parse_unit_statuses,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "probes" / "systemd"
USER = Account("user", 1000, 1000, Path("/home/user"))
HOST = HostContext("vm102", USER, USER, "user")


def read(name: str) -> str:
    return (DATA / name).read_text()


def result(stdout: str = "", stderr: str = "", code: int | None = 0, error: str | None = None):
    command = Command(("systemctl", "--user", "show"), scope="user")
    return CommandResult(command, command.argv, code, stdout, stderr, error)


UNITS = [
    "clawdbot-gateway-ops.service",
    "clawdbot-gateway-personal.service",
    "moltbot-gateway.service",
]


def test_three_blocks_in_the_order_asked() -> None:
    ops, personal, molt = parse_unit_statuses(UNITS, result(read("show-gateways-us-utc.txt")))
    assert (ops.load_state, ops.active_state, ops.enabled, ops.running) == (
        "loaded",
        "active",
        True,
        True,
    )
    assert ops.main_pid == 4106
    expected = datetime(2026, 11, 25, 12, 20, 31, 482113, tzinfo=UTC).timestamp()
    assert ops.active_enter_s == pytest.approx(expected, abs=1e-6)
    assert not ops.need_daemon_reload
    assert (personal.enabled, personal.running, personal.need_daemon_reload) == (False, False, True)
    assert personal.active_enter_s is None and personal.main_pid is None
    assert (molt.load_state, molt.unit_file_state, molt.loaded) == ("not-found", "", False)


def test_recorded_blocks_from_the_shared_data() -> None:
    """Files recorded for the fake host: second-resolution timestamps parse too."""
    (only,) = parse_unit_statuses(
        ["clawdbot-gateway.service"], result(read("show-all-properties.txt"))
    )
    assert only.running and only.enabled and only.main_pid == 4106
    assert only.active_enter_s == datetime(2026, 11, 25, 12, 20, 31, tzinfo=UTC).timestamp()
    (reload,) = parse_unit_statuses(
        ["clawdbot-gateway-work.service"], result(read("show-need-daemon-reload.txt"))
    )
    assert reload.need_daemon_reload and reload.main_pid == 4100
    (missing,) = parse_unit_statuses(
        ["moltbot-gateway.service"], result(read("show-not-found.txt"))
    )
    assert missing.load_state == "not-found" and not missing.running
    two = parse_unit_statuses(
        ["clawdbot-gateway.service", "clawdbot-gateway-work.service"],
        result(read("show-two-units.txt")),
    )
    assert [s.unit for s in two] == ["clawdbot-gateway.service", "clawdbot-gateway-work.service"]


@pytest.mark.parametrize(
    "stderr_file", ["stderr-user-bus-no-such-file.txt", "stderr-root-no-bus-env.txt"]
)
def test_no_user_manager_is_a_fact(stderr_file: str) -> None:
    statuses = parse_unit_statuses(UNITS, result(stderr=read(stderr_file), code=1))
    assert all(not s.reachable for s in statuses)
    assert "not running" in statuses[0].detail


def test_runner_refusal_is_unreachable_not_a_crash() -> None:
    statuses = parse_unit_statuses(UNITS[:1], result(code=None, error="user 'x' does not exist"))
    assert not statuses[0].reachable and "does not exist" in statuses[0].detail


def test_other_failures_and_garbage_are_probe_failures() -> None:
    with pytest.raises(ProbeFailed):
        parse_unit_statuses(UNITS, result(stderr="Unit name x is not valid.", code=1))
    with pytest.raises(ProbeFailed, match="2 blocks for 3 units"):
        parse_unit_statuses(UNITS, result(read("show-two-units.txt")))
    with pytest.raises(ValueError):
        parse_show_blocks("not a property line\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("n/a", None),
        ("Wed 2026-11-25 12:20:31 UTC", datetime(2026, 11, 25, 12, 20, 31, tzinfo=UTC).timestamp()),
        (
            "Wed 2026-11-25 12:20:31.5 UTC",
            datetime(2026, 11, 25, 12, 20, 31, tzinfo=UTC).timestamp() + 0.5,
        ),
        ("@1769421600", 1769421600.0),
    ],
)
def test_timestamps(text: str, expected: float | None) -> None:
    assert parse_timestamp(text) == expected


def test_local_zone_timestamps_are_refused() -> None:
    with pytest.raises(ValueError):
        parse_timestamp("Wed 2026-11-25 13:20:31 CET")


def test_every_unit_in_one_command() -> None:
    """However many kinds ask, one `systemctl --user show` with every unit, sorted."""
    seen: list[Command] = []

    def run(command: Command) -> CommandResult:
        seen.append(command)
        return CommandResult(command, command.argv, 0, read("show-gateways-us-utc.txt"))

    probes = [UnitStatusProbe(u) for u in reversed(UNITS)] + [UnitStatusProbe(UNITS[0])]
    facts = ProbeSession(HOST, run).collect(probes)
    assert len(seen) == 1
    argv = seen[0].argv
    assert argv[:4] == ("systemctl", "--user", "show", "--timestamp=us+utc")
    assert list(argv[4:7]) == sorted(UNITS)
    assert argv[7:] == ("-p", ",".join(PROPERTIES))
    assert seen[0].scope == "user" and not seen[0].mutating
    assert facts.get(UnitStatusProbe("moltbot-gateway.service")).load_state == "not-found"
    assert facts.get(UnitStatusProbe(UNITS[0])).main_pid == 4106
