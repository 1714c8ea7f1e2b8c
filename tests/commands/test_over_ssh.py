"""What the day-2 wiring (commands/wiring.py `over_ssh`) sends to a remote host for `backup
restore`, `suspend` and `resume`: the command line there, and whether it finishes there when
the link is lost. The transport itself is tested over a real sshd (tests/remote)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import reconciler.app.remote
from reconciler.cli import cli

SPEC = Path(__file__).resolve().parents[2] / "specs" / "vm102.yaml"


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Each call that would go to the remote host: its argv and options (nothing connects)."""
    calls: list[dict[str, Any]] = []

    def run_there(ctx: Any, remote: Any, spec: Any, argv: list[str], **options: Any) -> int:
        calls.append({"target": str(remote.ssh), "argv": argv, **options})
        return 0

    monkeypatch.setattr(reconciler.app.remote, "run_there", run_there)
    return calls


def _run(*args: str) -> int:
    return CliRunner().invoke(cli, list(args)).exit_code


F = "@file:spec.yaml"


@pytest.mark.parametrize(
    ("args", "there", "finishes"),
    [
        # An in-place restore half done is a stopped gateway on half its state: it finishes.
        (
            ("backup", "restore", str(SPEC), "ops", "--in-place"),
            ["backup", "restore", "--in-place", "--", F, "ops"],
            True,
        ),
        # A staging restore only makes a copy to look at: it stops with its client.
        (
            ("backup", "restore", str(SPEC), "ops", "--into", "/home/user/look"),
            ["backup", "restore", "--into", "/home/user/look", "--", F, "ops"],
            False,
        ),
        (("suspend", str(SPEC), "--reason", "-x"), ["suspend", "--reason", "-x", "--", F], True),
        (("resume", str(SPEC)), ["resume", "--", F], True),
    ],
)
def test_restore_suspend_resume_run_there_and_finish_only_when_safe(
    sent: list[dict[str, Any]], args: tuple[str, ...], there: list[str], finishes: bool
) -> None:
    assert _run(*args, "--target", "ssh://admin@vm102") == 0
    assert sent == [
        {
            "target": "ssh://admin@vm102",
            "argv": there,
            "changes_host": finishes,
            "installs_timer": False,
        }
    ]


def test_backup_restore_target_names_the_host_and_into_the_folder(
    sent: list[dict[str, Any]],
) -> None:
    result = CliRunner().invoke(
        cli, ["backup", "restore", str(SPEC), "ops", "--target", "/home/user/look"]
    )
    assert result.exit_code == 64
    assert "restore into a folder with --into DIR" in result.output
    assert sent == []


def test_suspend_without_a_spec_cannot_go_over_ssh(sent: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(cli, ["suspend", "--target", "ssh://admin@vm102"])
    assert result.exit_code == 64 and "--target needs a SPEC" in result.output
    assert sent == []
