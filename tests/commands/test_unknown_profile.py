"""Issue 22: an unknown profile exits the same in every command that takes one: 64 (a usage
error: the command line named it), the same message, nothing run on the host."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakehost import FakeHost
from review_cli import SPEC, FakeHostCli

BACKUP = """backup:
  repository: /srv/restic-none
  password_file: /nonexistent/password
"""


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHostCli]:
    monkeypatch.chdir(tmp_path)
    fake = FakeHost(tmp_path / "host")
    Path("vm102.yaml").write_text(SPEC + BACKUP)
    yield FakeHostCli(fake)
    fake.close()


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["devices", "vm102.yaml", "nope"], "PROFILE"),
        (["devices", "vm102.yaml", "nope", "approve", "3f0c2a8e"], "PROFILE"),
        (["logs", "vm102.yaml", "nope"], "PROFILE"),
        (["doctor", "vm102.yaml", "--profile", "nope"], "--profile"),
        (["rollback", "vm102.yaml", "nope", "--yes"], "PROFILE"),
        (["update", "vm102.yaml", "--retry", "nope", "--yes"], "--retry"),
        (["backup", "run", "vm102.yaml", "--profile", "nope"], "--profile"),
        (["backup", "list", "vm102.yaml", "--profile", "nope"], "--profile"),
        (["backup", "verify", "vm102.yaml", "--profile", "nope"], "--profile"),
        (["backup", "restore", "vm102.yaml", "nope"], "--profile"),
    ],
)
def test_an_unknown_profile_exits_64_with_one_message(
    host: FakeHostCli, argv: list[str], option: str
) -> None:
    result = host(*argv)
    assert result.exit_code == 64, result.output
    assert result.stderr == (
        f"error: {option} nope: vm102.yaml has no profile 'nope' (profiles: ops, personal)\n"
    )
    assert host.fake.mutating_calls() == []
