"""`<program> --version` parsing, as node, clawdbot and npm print it."""

from __future__ import annotations

import pytest

from reconciler.core.command import Command, CommandResult
from reconciler.facts.programs import ProgramVersionProbe


def parse(stdout: str, code: int = 0, stderr: str = "") -> tuple[str | None, str]:
    probe = ProgramVersionProbe("clawdbot", "/usr/local/bin/clawdbot")
    got = probe.parse(CommandResult(Command(("x",)), ("x",), code, stdout, stderr))
    return got.version, got.detail


@pytest.mark.parametrize(
    ("stdout", "version"),
    [
        ("v22.12.0\n", "v22.12.0"),
        ("2026.1.24-3\n", "2026.1.24-3"),
        ("clawdbot 2026.1.24-3\n", "2026.1.24-3"),
    ],
)
def test_versions(stdout: str, version: str) -> None:
    assert parse(stdout) == (version, "")


def test_a_failing_program_has_no_version_and_says_why() -> None:
    version, detail = parse(
        "", 1, "Error [ERR_MODULE_NOT_FOUND]: Cannot find package 'strip-ansi'\n"
    )
    assert version is None and "exit 1" in detail and "strip-ansi" in detail


def test_an_absent_program_is_read_in_process_as_not_installed() -> None:
    probe = ProgramVersionProbe("node", None)
    assert probe.command(None) is None  # type: ignore[arg-type]
    assert probe.read(None).detail == "node: not installed"  # type: ignore[arg-type]
